"""The click machinery of ``glugqa``: lazily imported sub-commands and one-line user errors."""

from __future__ import annotations

import errno
import importlib

import click

_PATH_KEY = "glugqa.command_path"  # ctx.meta is shared by every context of one invocation
USAGE_EXIT_CODE = 2  # click's code for usage errors; ours for every user error


class UserError(click.ClickException):
    """A user error shown as one line on stderr: ``<command path>: error: <message>``; exit code 2."""

    exit_code = USAGE_EXIT_CODE

    def __init__(self, message: str, command_path: str = "glugqa"):
        super().__init__(" ".join(str(message).split()))  # one line, whatever the message held
        self.command_path = command_path

    def show(self, file=None) -> None:
        click.echo(f"{self.command_path}: error: {self.format_message()}", err=True, file=file)


class CheckFailed(UserError):
    """A check that did not pass (a plan that does not fit, an SLO no candidate meets): the report is printed,
    then one line on stderr, ``<command path>: <message>``; exit code 1."""

    exit_code = 1

    def show(self, file=None) -> None:
        click.echo(f"{self.command_path}: {self.format_message()}", err=True, file=file)


def _one_line_usage(exc: click.UsageError, fallback: str) -> UserError:
    path = exc.ctx.command_path if exc.ctx is not None else fallback
    return UserError(f"{exc.format_message()} (see '{path} --help')", path)


class LazyGroup(click.Group):
    """A click group whose subcommands are imported on first use."""

    def __init__(self, *args, lazy: dict[str, tuple[str, str]] | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._lazy = lazy or {}

    def parse_args(self, ctx, args):
        """A group given no command is a usage error naming its commands (one line, exit 2), not its whole
        help squeezed into one line (click 8.2+) or the help and exit 0 (click 8.1)."""
        if not args and self.no_args_is_help and not ctx.resilient_parsing:
            names = ", ".join(self.list_commands(ctx))
            raise click.UsageError(f"missing command: one of {names}", ctx=ctx)
        return super().parse_args(ctx, args)

    def resolve_command(self, ctx, args):
        try:
            name, cmd, rest = super().resolve_command(ctx, args)
        except click.exceptions.NoSuchCommand:  # click suggests from the imported commands only
            raise click.exceptions.NoSuchCommand(
                click.utils.make_str(args[0]), possibilities=self.list_commands(ctx), ctx=ctx
            ) from None
        if cmd is not None:  # remembered for error lines: "glugqa table gqa: error: ..."
            ctx.meta[_PATH_KEY] = f"{ctx.command_path} {cmd.name or name}"
        return name, cmd, rest

    def list_commands(self, ctx):
        """The lazy commands in the order of their table, then those added directly, in the order added."""
        return [*self._lazy, *(name for name in self.commands if name not in self._lazy)]

    def get_command(self, ctx, name):
        if name not in self._lazy:
            return super().get_command(ctx, name)
        target, _ = self._lazy[name]
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:  # an optional extra (jax) is missing, or the command is not in this build
            if exc.name and exc.name.split(".")[0] in ("refimpl", "costmodel"):
                raise click.UsageError(f"'{name}' is not available: {exc.name} is missing", ctx=ctx) from None
            raise click.UsageError(f"'{name}' needs {exc.name}: pip install 'glugqa[jax]'", ctx=ctx) from None

    def format_commands(self, ctx, formatter):
        """List the lazy commands from their stored help, importing nothing."""
        names = self.list_commands(ctx)
        limit = max(45, formatter.width - 6 - max(map(len, names), default=0))
        rows = [
            (
                name,
                self._lazy[name][1] if name in self._lazy else self.commands[name].get_short_help_str(limit),
            )
            for name in names
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


class RootGroup(LazyGroup):
    """The top-level group: turns user errors anywhere below it into one line and exit code 2."""

    def make_context(self, info_name, args, parent=None, **extra):
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:
            raise _one_line_usage(exc, info_name or "glugqa") from None

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except UserError:
            raise
        except click.UsageError as exc:  # click's parser raises some without a context: the command named is ours
            raise _one_line_usage(exc, _deepest_path(ctx)) from None
        except (ValueError, OverflowError) as exc:
            raise UserError(str(exc), _deepest_path(ctx)) from None
        except OSError as exc:
            if (
                getattr(exc, "errno", None) == errno.EPIPE
            ):  # EPIPE: click's main handles a closed pipe quietly
                raise
            detail = f"{exc.strerror}: {exc.filename!r}" if exc.strerror and exc.filename else str(exc)
            raise UserError(detail, _deepest_path(ctx)) from None


def _deepest_path(ctx: click.Context) -> str:
    """'glugqa plan' for an error raised inside ``glugqa plan`` (the innermost command resolved)."""
    return ctx.meta.get(_PATH_KEY, ctx.command_path)
