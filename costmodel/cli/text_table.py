"""Aligned text tables for the human formats: ``simple`` (the terminal), ``github``, ``pipe`` (Markdown with
alignment colons) and ``latex_booktabs``.

These are the layouts of the tabulate library (https://github.com/astanin/python-tabulate), drawn the same
way character for character (``tests/test_cli_text_table.py`` checks it against tabulate itself, which stays
a test dependency). The CLI draws them itself because importing tabulate costs about 30 ms (it reads its own
package metadata and imports wcwidth), a fifth of the 0.2 s cold-start budget of ``glugqa plan``.

Rules (tabulate's, with ``disable_numparse=True``): every cell is a string, a data cell stripped of surrounding
blanks; a column is as wide as its widest cell and at least its header plus 2; headers are aligned like their
column;
``simple`` separates columns by two spaces and draws dashes under the header; ``github``/``pipe`` pad each cell
by one space between bars, ``pipe`` marks alignment with colons; LaTeX escapes its special characters after
padding (as tabulate does, so an escaped cell may be wider than its column); every line loses its trailing
blanks. Cells are single-line text:
``ValueError`` for a cell holding a line break (tabulate would draw it across several lines).
"""

from __future__ import annotations

LAYOUTS = ("simple", "github", "pipe", "latex_booktabs")
ALIGNS = ("left", "right")
HEADER_MIN_PADDING = 2  # tabulate's MIN_PADDING: a column is at least its header + 2 wide

LATEX_ESCAPES = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "^": r"\^{}",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "\\": r"\textbackslash{}",
    "<": r"\ensuremath{<}",
    ">": r"\ensuremath{>}",
}


def _pad(text: str, width: int, align: str) -> str:
    return text.ljust(width) if align == "left" else text.rjust(width)


def _latex(text: str) -> str:
    return "".join(LATEX_ESCAPES.get(c, c) for c in text)


def draw(rows: list[list[str]], headers: list[str], layout: str, aligns: tuple[str, ...]) -> str:
    """``rows`` (R rows of C strings) under ``headers`` (C strings), columns aligned by ``aligns`` (C of
    'left'/'right'), drawn in ``layout`` (one of LAYOUTS). Raises ValueError naming the argument."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}; got {layout!r}")
    if len(aligns) != len(headers) or any(a not in ALIGNS for a in aligns):
        raise ValueError(f"aligns must be {len(headers)} of {ALIGNS}; got {aligns!r}")
    if any(len(row) != len(headers) for row in rows):
        raise ValueError(f"rows must each have {len(headers)} cells, as headers")
    cells = [[str(c) for c in headers]] + [[str(c).strip() for c in row] for row in rows]  # (1 + R, C)
    if any("\n" in c or "\r" in c for row in cells for c in row):
        raise ValueError("rows and headers must be single-line text")
    widths = [
        max([len(head) + HEADER_MIN_PADDING, *(len(row[j]) for row in cells[1:])]) for j, head in enumerate(cells[0])
    ]
    padded = [[_pad(c, w, a) for c, w, a in zip(row, widths, aligns, strict=True)] for row in cells]
    if layout == "simple":
        rule = "  ".join("-" * w for w in widths)
        lines = ["  ".join(padded[0]), rule, *("  ".join(row) for row in padded[1:])]
    elif layout in ("github", "pipe"):
        dashes = ["-" * (w + 2) for w in widths]
        if layout == "pipe":
            dashes = [f":{d[1:]}" if a == "left" else f"{d[:-1]}:" for d, a in zip(dashes, aligns, strict=True)]
        lines = [f"| {' | '.join(padded[0])} |", f"|{'|'.join(dashes)}|"]
        lines += [f"| {' | '.join(row)} |" for row in padded[1:]]
    else:  # latex_booktabs
        spec = "".join("l" if a == "left" else "r" for a in aligns)
        body = [" " + " & ".join(_latex(c) for c in row) + " \\\\" for row in padded]
        lines = [f"\\begin{{tabular}}{{{spec}}}", "\\toprule", body[0], "\\midrule", *body[1:]]
        lines += ["\\bottomrule", "\\end{tabular}"]
    return "\n".join(line.rstrip() for line in lines)
