"""The CLI's own table drawing (costmodel/cli/text_table.py) against tabulate, whose layouts it reproduces:
the same text, character for character, for any single-line cells, in every layout and alignment."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from costmodel.cli.text_table import ALIGNS, LAYOUTS, draw

tabulate = pytest.importorskip("tabulate").tabulate

# printable single-line text, with LaTeX's special characters and blanks at the ends (both are stripped)
CELL = st.text(
    st.characters(codec="ascii", exclude_categories=("Cc",)) | st.sampled_from("&%$#_^{}~\\<>µ×"), max_size=12
)


@st.composite
def tables(draw_):
    n_cols = draw_(st.integers(1, 5))
    # every column of a report has a label (tabulate sizes blank headers of an empty table its own way)
    headers = draw_(st.lists(CELL.filter(str.strip), min_size=n_cols, max_size=n_cols))
    # at least one row: with none, tabulate drops the alignment (and writes `\begin{tabular}{}`); see below
    rows = draw_(st.lists(st.lists(CELL, min_size=n_cols, max_size=n_cols), min_size=1, max_size=6))
    aligns = tuple(draw_(st.lists(st.sampled_from(ALIGNS), min_size=n_cols, max_size=n_cols)))
    return rows, headers, aligns


@settings(max_examples=300, deadline=None, derandomize=True)
@given(table=tables(), layout=st.sampled_from(LAYOUTS))
def test_draw_matches_tabulate(table, layout):
    rows, headers, aligns = table
    expected = tabulate(rows, headers=headers, tablefmt=layout, colalign=aligns, disable_numparse=True)
    assert draw(rows, headers, layout, aligns) == expected


def test_a_report_table_matches_tabulate():
    rows = [["kv cache", "1,234.5"], ["weights_total & 100%", "16.06"]]
    for layout in LAYOUTS:
        expected = tabulate(
            rows, headers=["quantity", "value (GB)"], tablefmt=layout, colalign=("left", "right"), disable_numparse=True
        )
        assert draw(rows, ["quantity", "value (GB)"], layout, ("left", "right")) == expected


def test_an_empty_table_keeps_its_alignment():
    """No rows: the header and rule alone, aligned as the columns would be (where tabulate left-aligns all
    and writes an empty LaTeX column spec)."""
    aligns = ("left", "right")
    assert draw([], ["a", "bbbb"], "simple", aligns) == "a      bbbb\n---  ------"
    assert draw([], ["a", "bbbb"], "pipe", aligns) == "| a   |   bbbb |\n|:----|-------:|"
    assert draw([], ["a", "bbbb"], "latex_booktabs", aligns).startswith("\\begin{tabular}{lr}")


@pytest.mark.parametrize(
    "args, name",
    [
        (([["a"]], ["h"], "grid", ("left",)), "layout"),
        (([["a"]], ["h"], "simple", ("centre",)), "aligns"),
        (([["a"]], ["h"], "simple", ("left", "left")), "aligns"),
        (([["a", "b"]], ["h"], "simple", ("left",)), "rows"),
        (([["a\nb"]], ["h"], "simple", ("left",)), "single-line"),
    ],
)
def test_bad_input_names_the_argument(args, name):
    with pytest.raises(ValueError, match=name):
        draw(*args)
