"""The ``procos`` command line: a top-level group whose command groups live in their own modules.

Each group module (``engine/cli/store.py``, ...) is imported only when its commands are needed,
and each command is a thin shell over one function of :mod:`engine.api`. To add a group, add one
line to :data:`GROUPS`.

Errors: an :class:`~engine.errors.ProcosError` prints ``Error: <message>`` (and ``Try: <hint>``)
on stderr and exits with the error's exit code; anything else prints one line and exits 1.
``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from engine.errors import ProcosError

# command group name -> "module:attribute" of its click.Group, imported on first use
GROUPS: dict[str, str] = {
    "store": "engine.cli.store:store",
    "snapshot": "engine.cli.snapshot:snapshot",
    "validate": "engine.cli.validate:validate",
    "demo": "engine.cli.demo:demo",
    "drift": "engine.cli.drift:drift",
    "process": "engine.cli.workflow:process_group",
    "instance": "engine.cli.instances:instance_group",
    "task": "engine.cli.tasks:task_group",
    "user": "engine.cli.users:user_group",
    "audit": "engine.cli.users:audit",
}

EXIT_CODES_HELP = """\b
Exit codes: 0 ok, 1 error, 2 usage error, 75 store paused or locked (try again later),
77 not authorized."""


class LazyGroup(click.Group):
    """A click group that imports a command group's module only when that group is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*GROUPS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = GROUPS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        return getattr(importlib.import_module(module_name), attr)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.exceptions.Abort, click.ClickException):
            raise
        except ProcosError as err:
            report_error(err, debug=bool(ctx.params.get("debug")))
            ctx.exit(err.exit_code)
        except KeyboardInterrupt as err:
            click.echo(f"Error: interrupted by {str(err) or 'Ctrl-C'}", err=True)
            ctx.exit(130)
        except Exception as err:  # noqa: BLE001 - the last line of defence, reported, never silent
            report_error(err, debug=bool(ctx.params.get("debug")))
            ctx.exit(1)


def report_error(err: BaseException, *, debug: bool) -> None:
    """Print an error for a person: one ``Error:`` line, a ``Try:`` line, the traceback with debug."""
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    from engine.secrets import redact_text

    if isinstance(err, ProcosError):
        click.echo(f"Error: {redact_text(err.message)}", err=True)
        if err.hint:
            click.echo(f"Try: {redact_text(err.hint)}", err=True)
    else:
        suffix = "" if debug else " (run with --debug for the traceback)"
        click.echo(f"Error: unexpected {type(err).__name__}: {redact_text(str(err))}{suffix}", err=True)


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP)
@click.option("--debug", is_flag=True, help="Show the full traceback when a command fails.")
@click.option("--token-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Your personal token, read from FILE (mode 600), for every command that acts.")
@click.version_option(package_name="procos-knowledge", prog_name="procos")
@click.pass_context
def cli(ctx: click.Context, debug: bool, token_file: str | None) -> None:
    """ProcOS Knowledge Engine: move a vector knowledge layer between stores with proof.

    A store is named by a URI: faiss:PATH, postgresql://user@host/db or postgresql+embedded:PATH
    (options such as ?metric=l2&index=flat may follow). Where a command takes a URI it may be
    omitted; $VECTOR_ENDPOINT is used instead.
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["token_file"] = token_file


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")  # handled like Ctrl-C: an instance being run becomes interrupted


def main(argv: list[str] | None = None) -> None:
    """The ``procos`` console entry point."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    cli.main(args=argv, prog_name="procos")
