"""`glugqa plan` (and `--help`) start light: no JAX, no SciPy, no matplotlib, none of the reference's NumPy
ops -- only refimpl.variants. Checked in a fresh interpreter, where nothing else has imported them."""

import json
import subprocess
import sys

import pytest

HEAVY = ("jax", "jaxlib", "scipy", "matplotlib", "torch")
ALLOWED_REFIMPL = {"refimpl", "refimpl.variants"}


def imported_after(argv: list[str]) -> dict:
    code = (
        "import json, sys\n"
        "from costmodel.cli import cli\n"
        f"cli.main({argv!r}, prog_name='glugqa', standalone_mode=False)\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return set(json.loads(proc.stdout.splitlines()[-1]))


@pytest.mark.parametrize("argv", [["plan"], ["--help"], ["ref", "--help"], ["table", "gqa"]])
def test_start_up_imports_no_jax_and_no_reference_ops(argv):
    modules = imported_after(argv)
    assert "costmodel.plan" in modules or argv != ["plan"]
    assert not [m for m in modules if m.split(".")[0] in HEAVY]
    assert {m for m in modules if m.split(".")[0] == "refimpl"} <= ALLOWED_REFIMPL


def test_each_lazy_command_is_registered_with_its_own_help():
    """`glugqa --help` lists the stored short help without importing the commands: it must be the command's
    own (its `short_help`, or the first sentence of its docstring), under the name it is registered as."""
    import click

    from costmodel.cli.root import COMMANDS, REF_COMMANDS, cli, ref

    for group, table in ((cli, COMMANDS), (ref, REF_COMMANDS)):
        ctx = click.Context(group)
        for name, (_target, stored_help) in table.items():
            command = group.get_command(ctx, name)
            assert command.name == name
            assert command.get_short_help_str(limit=10**6) == stored_help


def test_plan_imports_only_its_own_command_module():
    modules = imported_after(["plan"])
    commands = {m for m in modules if m.startswith("costmodel.cli.")}
    assert commands <= {
        f"costmodel.cli.{m}" for m in ("root", "groups", "plan", "options", "formats", "param_types", "text_table")
    }, commands
    assert "tabulate" not in modules
