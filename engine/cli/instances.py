"""``procos instance ...``: list, show (a summary; --history, --follow), retry, cancel."""

from __future__ import annotations

import time
from typing import Any

import click

from .actor import actor_options
from .workflow import _finish, _print, json_flag, parse_vars


def _api() -> Any:
    from engine.api import processes

    return processes


@click.group("instance")
def instance_group() -> None:
    """Process instances: list, show, retry, cancel.

    \b
    Example: procos instance list
    """


@instance_group.command("list")
@json_flag
def instance_list(as_json: bool) -> None:
    """List instances with their state and outcome, newest last.

    \b
    Example: procos instance list --json
    """
    from .tables import age, table

    found = _api().list_instances()
    _print(found, as_json, table(found, [
        ("INSTANCE", lambda i: i["instance_id"]), ("PROCESS", lambda i: i["process"]),
        ("STATE", lambda i: i["state"]), ("OUTCOME", lambda i: i.get("outcome") or "-"),
        ("STARTED BY", lambda i: i["started_by"]), ("STARTED", lambda i: i["started_at"][:19].replace("T", " ")),
        ("AGE", lambda i: age(i["started_at"]))], empty="no instances"))


@instance_group.command("show")
@click.argument("instance_id")
@click.option("--history", is_flag=True, help="Also print the history/audit as a table.")
@click.option("--follow", is_flag=True, help="Keep printing new history entries while it runs or waits.")
@click.option("--interval", type=float, default=1.0, show_default=True, help="Seconds between looks (--follow).")
@json_flag
def instance_show(instance_id: str, history: bool, follow: bool, interval: float, as_json: bool) -> None:
    """Show an instance: state, outcome, starter, times, current step, waiting task, result, error.

    \b
    Example: procos instance show 3f2a9c0d1e7b --history
    """
    from .views import history_table, instance_summary

    shown = _api().show_instance(instance_id)
    if as_json:
        _print(shown, True, "")
        return
    click.echo(instance_summary(shown))
    if history:
        click.echo("")
        click.echo(history_table(shown["history"]))
    if follow:
        _follow(instance_id, len(shown["history"]), interval)


def _follow(instance_id: str, seen: int, interval: float) -> None:
    from .views import history_table, instance_summary

    click.echo("")
    while True:
        shown = _api().show_instance(instance_id)
        new = shown["history"][seen:]
        if new:
            click.echo("\n".join(history_table(new).splitlines()[1:]))
            seen += len(new)
        if shown["state"] not in ("running", "waiting"):
            click.echo("")
            click.echo(instance_summary(shown))
            return
        time.sleep(max(0.1, interval))


@instance_group.command("retry")
@click.argument("instance_id")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE",
              help="Change a variable before retrying (repeatable; audited).")
@actor_options
@json_flag
def instance_retry(instance_id: str, variables: tuple[str, ...], actor: dict, as_json: bool) -> None:
    """Continue an instance in error or interrupted from its last completed step.

    \b
    Example: procos instance retry 3f2a9c0d1e7b --var out_dir=/srv/snapshots
    """
    _finish(_api().retry_instance(instance_id, variables=parse_vars(variables), **actor), as_json)


@instance_group.command("cancel")
@click.argument("instance_id")
@actor_options
@json_flag
def instance_cancel(instance_id: str, actor: dict, as_json: bool) -> None:
    """Cancel an instance that is not running (its registered clean-up runs first).

    \b
    Example: procos instance cancel 3f2a9c0d1e7b
    """
    _finish(_api().cancel_instance(instance_id, **actor), as_json)
