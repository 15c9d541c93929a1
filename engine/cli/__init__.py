"""The ``procos`` command line: a top-level group whose command groups live in their own modules.

Each group module (``engine/cli/store.py``, ...) is imported only when its commands are needed,
and each command is a thin shell over one function of :mod:`engine.api`. To add a group, add one
line to :data:`GROUPS`.

Errors: every failure prints exactly two lines on stderr, ``Error: <message>`` and ``Try: <hint>``
(a default hint when the error brings none), and exits with the error's exit code (1 for anything
that is not a :class:`~engine.errors.ProcosError`). ``--debug`` adds the traceback.
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
    "instance": "engine.cli.workflow:instance_group",
    "task": "engine.cli.workflow:task_group",
    "user": "engine.cli.users:user_group",
    "audit": "engine.cli.users:audit",
}

EXIT_CODES_HELP = """\b
Exit codes: 0 ok, 1 error, 2 usage error, 3 bundle verification failed, 75 store paused or
locked (try again later), 77 not authorized."""


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
        except Exception as err:  # noqa: BLE001 - the last line of defence, reported, never silent
            report_error(err, debug=bool(ctx.params.get("debug")))
            ctx.exit(1)


def one_line(text: str) -> str:
    """``text`` on one line: line breaks and runs of spaces (libpq's, tracebacks') become one space."""
    return " ".join(str(text).split())


def default_hint(err: BaseException) -> str:
    """The ``Try:`` line of an error that brings no hint of its own."""
    from engine import errors

    if isinstance(err, errors.BundleInvalid):
        return "run procos snapshot verify PATH for every problem of the bundle"
    if isinstance(err, errors.BundleError):
        return "check the bundle's path; procos snapshot verify PATH checks a bundle"
    if isinstance(err, errors.StoreError):
        return "check the store URI; procos store stats URI shows what the store holds"
    if isinstance(err, errors.NotAuthorized):
        return "ask an administrator for the role, or act with your own token (--token-file or $PROCOS_TOKEN)"
    if isinstance(err, errors.WorkflowError):
        return "procos instance show ID shows the instance's history and error"
    if isinstance(err, errors.ProcosError):
        return "see procos COMMAND --help for what the command expects"
    return "run it again as procos --debug ... to see the traceback, and report it"


def report_error(err: BaseException, *, debug: bool) -> None:
    """Print an error for a person: one ``Error:`` line and one ``Try:`` line (the traceback first with debug).

    Multi-line messages (libpq's, for one) are joined onto one line; secrets are redacted.
    """
    if debug:
        traceback.print_exception(err, file=sys.stderr)
    from engine.secrets import redact_text

    if isinstance(err, ProcosError):
        click.echo(f"Error: {one_line(redact_text(err.message))}", err=True)
        click.echo(f"Try: {one_line(redact_text(err.hint or default_hint(err)))}", err=True)
    else:
        click.echo(f"Error: unexpected {type(err).__name__}: {one_line(redact_text(str(err)))}", err=True)
        click.echo(f"Try: {default_hint(err)}", err=True)


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


def main(argv: list[str] | None = None) -> None:
    """The ``procos`` console entry point."""
    cli.main(args=argv, prog_name="procos")
