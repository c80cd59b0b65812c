"""The import graph of `refimpl` and `costmodel`: no cycles, and imports go one way.

Read from the source with `ast` (nothing is imported), so a cycle is found even where Python would happen to
get away with it. What counts as an edge A -> B (A's code can import B):

- `import B` and `from B import x` (B a module of the project; `from P import m` with m a submodule of P is
  an edge to P.m), relative imports resolved against A's package;
- at EVERY level: module top, class bodies and function bodies. Function-level ("lazy") imports count: they
  are how the CLI and `refimpl/__init__` defer heavy modules, and a lazy import that closes a loop is still
  two modules that each need the other (the old `cli.py` <-> `cli_docs.py` pair was exactly that);
- a lazy registration string "package.module:attribute" (the `glugqa ref` table, LazyGroup): the group
  imports that module when the command runs, so it is an edge like an import.

Not seen: `importlib.import_module` with a computed name (refimpl/__init__'s lazy ops), which can only name
the package's own submodules. The implicit import of a parent package (importing `costmodel.config` first
runs `costmodel/__init__.py`) is not an edge: Python initialises the parent before the child, so
parent -> child is the normal order, not a loop.

Direction (docs/design.md, "Layers"): the reference never imports the cost model or the CLI; the cost model's
library reads only the reference's pure-Python registry (`refimpl.variants`), never its ops; nothing outside
`costmodel/cli/` imports the CLI (it reaches everything; nothing reaches it).
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("refimpl", "costmodel")
CLI = "costmodel.cli"
COST_MODEL_MAY_READ = {"refimpl", "refimpl.variants"}  # the registry, pure Python; never the ops
LAZY_TARGET = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_]\w*$")  # "refimpl.jax.cli:verify"


def module_files(root: Path, packages=PACKAGES) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of ``packages`` under ``root``."""
    out = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


def _within(name: str, known) -> str | None:
    """``name`` or its longest prefix that is a module of the project; None outside the project."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in known:
            return ".".join(parts[:n])
    return None


def imports_of(name: str, path: Path, known) -> list[tuple[str, int]]:
    """(imported project module, line) for every import in ``path`` at any level, and every lazy target."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(_within(alias.name, known), node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in known else _within(base, known), node.lineno))
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = LAZY_TARGET.match(node.value)
            if match and match.group(1) in known:
                found.append((match.group(1), node.lineno))
    return [(target, line) for target, line in found if target is not None and target != name]


def import_graph(root: Path = REPO, packages=PACKAGES) -> dict[str, dict[str, int]]:
    """module -> {imported module: first line importing it}."""
    files = module_files(root, packages)
    graph: dict[str, dict[str, int]] = {}
    for name, path in files.items():
        edges = graph.setdefault(name, {})
        for target, line in imports_of(name, path, files):
            edges.setdefault(target, line)
    return graph


def find_cycle(graph: dict[str, dict[str, int]]) -> list[str] | None:
    """One import cycle [a, b, ..., a] if the graph has any (depth-first search), else None."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (cycle := visit(start)):
            return cycle
    return None


def describe(cycle: list[str], graph) -> str:
    return " -> ".join(
        f"{a} (line {graph[a][b]})" for a, b in zip(cycle, cycle[1:], strict=False)
    ) + f" -> {cycle[-1]}"


def test_no_import_cycle():
    graph = import_graph()
    assert {"refimpl", "costmodel", CLI, "refimpl.jax.cli"} <= set(graph)
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + describe(cycle, graph)


def wrong_way(graph: dict[str, dict[str, int]]) -> list[str]:
    """Every edge against the layering, as 'module:line imports target (the rule)'."""
    wrong = []
    for source, edges in graph.items():
        in_cli = source == CLI or source.startswith(CLI + ".")
        for target, line in edges.items():
            if source.startswith("refimpl") and target.startswith("costmodel"):
                wrong.append(f"{source}:{line} imports {target} (the reference never uses the cost model)")
            if not in_cli and (target == CLI or target.startswith(CLI + ".")):
                wrong.append(f"{source}:{line} imports {target} (nothing outside {CLI} imports the CLI)")
            if (
                source.startswith("costmodel")
                and not in_cli
                and target.startswith("refimpl")
                and target not in COST_MODEL_MAY_READ
            ):
                wrong.append(f"{source}:{line} imports {target} (the cost model reads only refimpl.variants)")
    return wrong


def test_imports_go_one_way():
    graph = import_graph()
    assert wrong_way(graph) == []
    # the CLI reaches the reference's commands, lazily, by name
    assert {"refimpl.jax.cli", "refimpl.conformance.cli"} <= set(graph[CLI + ".root"])


def test_import_costmodel_stays_light():
    """At run time too: `import costmodel` (and the CLI's modules) load no heavy library and, of the
    reference, only its registry. Fresh interpreter, so nothing else has imported them."""
    code = "import json, sys, costmodel, costmodel.cli; print(json.dumps(sorted(sys.modules)))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    modules = json.loads(proc.stdout.splitlines()[-1])
    heavy = ("jax", "jaxlib", "torch", "transformers", "scipy", "matplotlib")
    assert [m for m in modules if m.split(".")[0] in heavy] == []
    assert {m for m in modules if m.split(".")[0] == "refimpl"} == COST_MODEL_MAY_READ


def test_the_checks_catch_a_lazy_cycle_and_a_wrong_direction(tmp_path):
    """A function-level import closing a loop, a relative import and a lazy "module:attr" string are seen."""
    pkg = tmp_path / "costmodel"
    (pkg / "cli").mkdir(parents=True)
    (tmp_path / "refimpl").mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "cli" / "__init__.py").write_text("from .root import cli\n")
    (pkg / "cli" / "root.py").write_text("TABLE = {'x': ('costmodel.cli.docs:run', 'help')}\n")
    (pkg / "cli" / "docs.py").write_text("def run():\n    from .root import cli  # lazy\n")
    (tmp_path / "refimpl" / "__init__.py").write_text("")
    (tmp_path / "refimpl" / "ops.py").write_text("def f():\n    import costmodel.cli\n")
    graph = import_graph(tmp_path)
    assert graph["costmodel.cli.docs"] == {"costmodel.cli.root": 2}
    assert graph["refimpl.ops"] == {"costmodel.cli": 2}
    cycle = find_cycle(graph)
    assert describe(cycle, graph) == (
        "costmodel.cli.root (line 1) -> costmodel.cli.docs (line 2) -> costmodel.cli.root"
    )
    assert wrong_way(graph) == [
        "refimpl.ops:2 imports costmodel.cli (the reference never uses the cost model)",
        "refimpl.ops:2 imports costmodel.cli (nothing outside costmodel.cli imports the CLI)",
    ]
