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
