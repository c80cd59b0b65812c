"""The ``glugqa`` command line (click): a package of its own on top of the cost model and the reference.

Nothing outside this package imports it (tests/test_import_graph.py); it imports what it needs from
``costmodel`` and ``refimpl``. The entry point is ``glugqa = "costmodel.cli:main"``.

Modules:

=================  ===========================================================================================
``root``           the root group ``cli`` and ``main``; ``COMMANDS`` and ``REF_COMMANDS``: every command by name,
                   imported only when it runs
``plan``           ``glugqa plan`` (and ``bound_of``, shared by the commands that name a step's bound)
``serve``          ``glugqa serve``: devices a request rate needs under TTFT/TPOT SLOs, per candidate, ranked
``model``          ``glugqa params | flops | kv | latency``: one model, by component or by op
``kv``             ``glugqa kv``: the KV cache against MHA, or by layer kind (full, sliding, cross)
``sweep``          ``glugqa sweep kv-heads|d-ff|batch|context`` (a group); ``rate`` lives in ``sweep_rate``
``tables``         ``glugqa table gqa|ffn``: the two papers' tradeoff tables
``info``           ``glugqa hardware list|show``, ``glugqa models list|show``: the presets
``docs``           ``glugqa docs [--check]``; its figures in ``docs_figures``, the README tour in ``docs_tour``
``groups``         click machinery: ``LazyGroup`` (subcommands imported on first use), ``RootGroup`` (every
                   user error one line on stderr, exit code 2), ``UserError``
``options``        options shared by the commands (model, hardware, dtypes, tp, efficiencies, server memory,
                   --format); ``serve_options``: workload and SLO options; ``plots``: ``--plot FILE.png``
``param_types``    click parameter types: bounded counts, fractions in (0, 1], value lists, N-or-'max'
``formats``        ``Report`` / ``Column`` and ``render``: table, github, markdown, csv, json, latex
``text_table``     the aligned text of the human formats (tabulate's layouts, without its import cost)
=================  ===========================================================================================

Imports inside the package go one way: command modules -> ``options`` / ``formats`` / ``groups`` ->
``param_types``; ``root`` names the command modules but imports none of them, and no module imports
``root`` (``glugqa docs`` runs commands through the root group it finds on click's context instead).

How to add a command group (``glugqa cost``, say):

1. Write ``costmodel/cli/cost.py``: click commands built from the shared options (``@model_options``,
   ``@hardware_options``, ``@format_option``, ...), each printing one ``formats.Report`` with
   ``options.emit(report, fmt)`` (under ``@efficiency_options`` it adds the note and the JSON key naming the
   efficiency profile). Validate with the library's functions and let them raise ``ValueError``:
   the root group turns it into one line and exit code 2. A group with subcommands is a
   ``click.group(cls=LazyGroup)``.
2. Register it by name in ``COMMANDS`` in ``root.py``: ``"cost": ("costmodel.cli.cost:cost_command", "<its
   short help>")``; its place there is its place in ``glugqa --help``, which lists the stored help without
   importing the module (``tests/test_cli_startup.py`` checks that it is the command's own).
3. If it needs JAX, SciPy or the reference's ops, import them inside the command function:
   ``tests/test_cli_startup.py`` fails when ``glugqa plan`` or ``--help`` starts importing them.
4. A new subcommand of an existing group (``table``, ``hardware``, ``models``) goes in that group's module;
   a new kind of sweep goes in ``sweep.py`` (turn ``sweep`` into a group there if it needs its own options).
5. Tests in ``tests/test_cli_<group>.py``; a generated table in ``docs.TABLES`` if the output belongs in
   ``docs/tables`` (then ``glugqa docs``).
"""

from .groups import LazyGroup, RootGroup, UserError
from .root import cli, main

__all__ = ["LazyGroup", "RootGroup", "UserError", "cli", "main"]
