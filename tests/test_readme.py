"""The README's examples are true: its Python blocks run, and each `$ glugqa ...` console block shows what
that command prints now."""

import pathlib
import re
import shlex

from click.testing import CliRunner

from costmodel.cli import cli

README = (pathlib.Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_readme_python_blocks_run():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 2, "README lost its Python examples"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_readme_console_blocks_match_the_cli():
    blocks = re.findall(r"```console\n\$ (glugqa[^\n]*)\n(.*?)```", README, flags=re.S)
    assert len(blocks) >= 3, "README lost its CLI tour"
    for command, shown in blocks:
        result = CliRunner().invoke(cli, shlex.split(command)[1:])
        assert result.exit_code == 0, (command, result.output)
        assert result.output.rstrip("\n") == shown.rstrip("\n"), f"README output of `{command}` is stale"
