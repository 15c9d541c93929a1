"""The ``procos`` command line: a top-level group whose command groups live in their own modules.

Each group module (``engine/cli/store.py``, ...) is imported only when its commands are needed,
and each command is a thin shell over one function of :mod:`engine.api`. To add a group, add one
line to :data:`GROUPS`.

Errors: every failure prints exactly two lines on stderr, ``Error: <message>`` and ``Try: <hint>``
(a default hint when the error brings none), and exits with the error's exit code (1 for anything
that is not a :class:`~engine.errors.ProcosError`). ``--debug`` adds the traceback.

Every command (loaded lazily) gets the same finishing: ``-q/--quiet`` and ``-v/--verbose`` and the
exit codes in its help. Colour is used only on a terminal, and never when ``NO_COLOR`` is set.
"""

from __future__ import annotations

import importlib
import sys
import traceback
from typing import Any

import click

from engine.errors import EXIT_CODES, ProcosError

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
    "worker": "engine.cli.workers:worker_group",
    "replicate": "engine.cli.replication:replicate",
    "restore": "engine.cli.replication:restore",
    "drill": "engine.cli.drills:drill_group",
    "scheduler": "engine.cli.schedules:scheduler_group",
    "schedule": "engine.cli.schedules:schedule_group",
    "user": "engine.cli.users:user_group",
    "audit": "engine.cli.users:audit",
    "config": "engine.cli.config:config_group",
    "completion": "engine.cli.config:completion",
    "ui": "engine.cli.ui:ui",
}

EXIT_CODES_HELP = "\b\nExit codes:\n" + "\n".join(f"  {code:>3}  {what}" for code, what in EXIT_CODES.items())


def _verbosity(ctx: click.Context, param: click.Parameter, value: int) -> None:
    if value:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj[param.name] = max(root.obj.get(param.name) or 0, int(value))


QUIET = click.Option(["-q", "--quiet"], is_flag=True, expose_value=False, callback=_verbosity, is_eager=True,
                     help="Print nothing but errors and --json output (the exit code tells the outcome).")
VERBOSE = click.Option(["-v", "--verbose"], count=True, expose_value=False, callback=_verbosity, is_eager=True,
                       help="Say more: progress and library log lines on stderr (-vv: debug).")


def finish_command(cmd: click.Command) -> click.Command:
    """Give ``cmd`` (and its subcommands) -q/-v and the exit codes in its help; idempotent."""
    if not getattr(cmd, "_procos_finished", False):
        names = {o for p in cmd.params for o in getattr(p, "opts", [])}
        if "-q" not in names:
            cmd.params.extend([QUIET, VERBOSE])
        if "--progress" not in names:
            from .progress_view import PROGRESS

            cmd.params.append(PROGRESS)
        if "130" not in (cmd.epilog or ""):
            cmd.epilog = f"{cmd.epilog}\n\n{EXIT_CODES_HELP}" if cmd.epilog else EXIT_CODES_HELP
        if not isinstance(cmd, click.Group) and cmd.callback is not None:
            cmd.callback = _quiet_aware(cmd.callback)
        cmd._procos_finished = True  # type: ignore[attr-defined]
    if isinstance(cmd, click.Group):
        for sub in cmd.commands.values():
            finish_command(sub)
    return cmd

class LazyGroup(click.Group):
    """A click group that imports a command group's module only when that group is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*GROUPS, *super().list_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        target = GROUPS.get(cmd_name)
        if target is None:
            return super().get_command(ctx, cmd_name)
        module_name, _, attr = target.partition(":")
        return finish_command(getattr(importlib.import_module(module_name), attr))

    def invoke(self, ctx: click.Context) -> Any:
        try:
            with _verbosity_applied(ctx):
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


def _quiet_aware(callback: Any) -> Any:
    """Run a command's callback with its human output dropped under -q (its --json output is kept)."""
    import contextlib
    import functools
    import io

    @functools.wraps(callback)
    def run(*args: Any, **kwargs: Any) -> Any:
        from .progress_view import progress_sink

        root = click.get_current_context().find_root().obj or {}
        with progress_sink(root.get("progress"), bool(root.get("quiet"))):
            if root.get("quiet") and not kwargs.get("as_json"):
                with contextlib.redirect_stdout(io.StringIO()):
                    return callback(*args, **kwargs)
            return callback(*args, **kwargs)
    return run


class _verbosity_applied:
    """-v: library logs on stderr (-q is applied per command, see :func:`_quiet_aware`)."""

    def __init__(self, ctx: click.Context) -> None:
        self.ctx = ctx

    def __enter__(self) -> None:
        obj = self.ctx.obj or {}
        import logging

        if obj.get("verbose"):
            logging.basicConfig(level=logging.DEBUG if obj["verbose"] > 1 else logging.INFO,
                                format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)

    def __exit__(self, *exc: object) -> None:
        pass
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
    from engine.api import redact as redact_text

    if isinstance(err, ProcosError):
        click.echo(f"Error: {one_line(redact_text(err.message))}", err=True)
        click.echo(f"Try: {one_line(redact_text(err.hint or default_hint(err)))}", err=True)
    else:
        click.echo(f"Error: unexpected {type(err).__name__}: {one_line(redact_text(str(err)))}", err=True)
        click.echo(f"Try: {default_hint(err)}", err=True)


@click.group(cls=LazyGroup, epilog=EXIT_CODES_HELP, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--debug", is_flag=True, help="Show the full traceback when a command fails.")
@click.option("--token-file", type=click.Path(dir_okay=False), metavar="FILE",
              help="Your personal token, read from FILE (mode 600), for every command that acts.")
@click.version_option(package_name="procos-knowledge", prog_name="procos")
@click.pass_context
def cli(ctx: click.Context, debug: bool, token_file: str | None) -> None:
    """ProcOS Knowledge Engine: move a vector knowledge layer between stores with proof.

    A store is named by a URI: faiss:PATH, postgresql://user@host/db or postgresql+embedded:PATH
    (options such as ?metric=l2&index=flat may follow). Where a command takes a URI it may be
    omitted; $VECTOR_ENDPOINT is used instead. State (instances, users, reports) lives in
    $PROCOS_HOME (default ~/.local/share/procos); settings in $PROCOS_HOME/config.yaml.

    \b
    Example: procos demo        (the lift-and-shift playbook on embedded defaults, PASS or FAIL)
    """
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["token_file"] = token_file


def _root_params() -> None:
    from .progress_view import PROGRESS

    cli.params.extend([QUIET, VERBOSE, PROGRESS])


_root_params()


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")  # handled like Ctrl-C: an instance being run becomes interrupted


def main(argv: list[str] | None = None) -> None:
    """The ``procos`` console entry point."""
    import signal

    signal.signal(signal.SIGTERM, _on_sigterm)
    cli.main(args=argv, prog_name="procos")
