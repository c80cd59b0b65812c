"""`glugqa docs`: the committed docs are current, --check catches stale files, figures are reproducible."""

import json
import pathlib

import pytest
from click.testing import CliRunner

from costmodel.cli import cli
from costmodel.cli import docs as cli_docs
from costmodel.cli import docs_figures as cli_figures

REPO_DOCS = pathlib.Path(__file__).resolve().parent.parent / "docs"


def invoke(*args):
    return CliRunner().invoke(cli, list(args), prog_name="glugqa")


def test_committed_docs_are_current():
    result = invoke("docs", "--check", "--root", str(REPO_DOCS))
    assert result.exit_code == 0, result.output


def test_check_reports_missing_and_edited_files(tmp_path):
    result = invoke("docs", "--root", str(tmp_path), "--no-figures")
    assert result.exit_code == 0, result.output
    tables = sorted(p.name for p in (tmp_path / "tables").iterdir())
    assert tables == sorted([*cli_docs.TABLES, "README.md"])
    result = invoke("docs", "--check", "--root", str(tmp_path))
    assert result.exit_code == 1
    assert all(f"figures/{name}.json" in result.stderr for name in cli_figures.FIGURES)
    # copy the figures from the repo: now only an edited table is stale
    (tmp_path / "figures").mkdir()
    for name in cli_figures.FIGURES:
        for ext in ("json", "png"):
            (tmp_path / f"figures/{name}.{ext}").write_bytes(
                (REPO_DOCS / f"figures/{name}.{ext}").read_bytes()
            )
    assert invoke("docs", "--check", "--root", str(tmp_path)).exit_code == 0
    edited = tmp_path / "tables" / "ffn-t5-base.md"
    edited.write_text(edited.read_text().replace("4,718,592", "4,718,593", 1))
    result = invoke("docs", "--check", "--root", str(tmp_path))
    assert result.exit_code == 1 and "tables/ffn-t5-base.md" in result.stderr
    assert "tables/gqa" not in result.stderr


def test_each_table_is_its_command_output():
    for name, (heading, command) in cli_docs.TABLES.items():
        text = (REPO_DOCS / "tables" / name).read_text()
        assert text.startswith(cli_docs.GENERATED_NOTE) and f"# {heading}" in text
        output = invoke(*command.split(), "--format", "markdown").stdout
        assert output.rstrip("\n") in text


def test_figure_data_are_the_cost_model():
    data = json.loads((REPO_DOCS / "figures/decode-latency-vs-kv-heads.json").read_text())
    h100 = next(s for s in data["series"] if "H100" in s["label"])
    assert h100["x"] == [1, 2, 4, 8, 16, 32, 64]
    import costmodel

    cfg = costmodel.MODELS["llama-2-70b"].with_(n_kv_heads=64)
    mha = costmodel.decode_latency(cfg, "h100-sxm", batch=32, context=4096, tp=8).total_s * 1e3
    assert h100["y"][-1] == pytest.approx(mha, rel=1e-5)
    assert h100["y"] == sorted(h100["y"])  # fewer KV heads never slower


def test_figures_are_drawn_deterministically(tmp_path):
    pytest.importorskip("matplotlib")
    data = cli_figures.kv_vs_context()
    cli_figures.draw(data, tmp_path / "a.png")
    cli_figures.draw(data, tmp_path / "b.png")
    a, b = (tmp_path / "a.png").read_bytes(), (tmp_path / "b.png").read_bytes()
    assert a[:8] == b"\x89PNG\r\n\x1a\n" and a == b
    assert b"Software" not in a  # no matplotlib version stamp


@pytest.mark.parametrize("check", [True, False], ids=["check", "write"])
def test_a_root_that_is_not_a_docs_folder_is_one_line(tmp_path, check):
    """Missing, a file, or a folder without generated files: one line naming --root, exit 2, nothing written
    (before: --check said "20 generated file(s) under /nonexistent are stale" and exited 1)."""
    (tmp_path / "file.md").write_text("x")
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.md").write_text("mine")
    cases = {
        str(tmp_path / "missing"): "Directory '{}' does not exist",
        str(tmp_path / "file.md"): "Directory '{}' is a file",
        str(tmp_path / "other"): "'{}' is not a glugqa docs folder",
    }
    for root, message in cases.items():
        result = invoke("docs", *(["--check"] if check else []), "--root", root)
        assert result.exit_code == 2 and result.stdout == "", result.output
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("glugqa docs: error: Invalid value for '--root': ")
        assert message.format(root) in lines[0]
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["file.md", "notes.md", "other"]
    empty = tmp_path / "empty"
    empty.mkdir()  # --check of an empty folder: not a docs folder; writing fills it (tested above)
    result = invoke("docs", "--check", "--root", str(empty))
    assert result.exit_code == 2 and "is not a glugqa docs folder" in result.stderr
