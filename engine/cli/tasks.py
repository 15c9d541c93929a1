"""``procos task ...``: the approvals inbox: list, show, complete."""

from __future__ import annotations

from typing import Any

import click

from .actor import actor_options
from .workflow import _finish, _print, json_flag


def _api() -> Any:
    from engine.api import processes

    return processes


@click.group("task")
def task_group() -> None:
    """User tasks (approvals) in lanes: list the ones you may complete, show one, decide.

    \b
    Example: procos task list
    """


@task_group.command("list")
@click.option("--ids", is_flag=True, help="Print only the task ids, one per line (for scripts).")
@actor_options
@json_flag
def task_list(ids: bool, actor: dict, as_json: bool) -> None:
    """List the waiting tasks you may complete, with what is to be approved.

    \b
    Example: PROCOS_TOKEN=$(cat ~/.procos-token) procos task list
    """
    from .tables import age, size, table
    from .views import what

    found = _api().list_tasks(**actor)
    if ids and not as_json:
        for t in found:
            click.echo(t["task_id"])
        return

    def records(t: dict) -> str:
        n = (t.get("subject") or {}).get("record_count")
        return f"{n:,} records" if isinstance(n, int) else "-"

    _print(found, as_json, table(found, [
        ("TASK", lambda t: t["task_id"]), ("PROCESS", lambda t: t["process"]),
        ("STARTED BY", lambda t: t.get("started_by") or "-"), ("RECORDS", records),
        ("SIZE", lambda t: size((t.get("subject") or {}).get("bytes"))),
        ("AGE", lambda t: age(t.get("waiting_since"))), ("APPROVE", what)], widest=40,
        empty="no tasks you may complete"))


@task_group.command("show")
@click.argument("task_id")
@json_flag
def task_show(task_id: str, as_json: bool) -> None:
    """Show one waiting task in full: the request, the bundle's figures, who may decide.

    \b
    Example: procos task show 2f14b7ad-58dc-4df7-ba11-26e078ab0967
    """
    from .views import task_summary

    shown = _api().show_task(task_id)
    _print(shown, as_json, task_summary(shown))


@task_group.command("complete")
@click.argument("task_id")
@click.option("--approve/--reject", "approve", default=None, help="The decision (required).")
@click.option("--comment", default=None, help="A comment for the audit log.")
@actor_options
@json_flag
def task_complete(task_id: str, approve: bool | None, comment: str | None, actor: dict, as_json: bool) -> None:
    """Approve or reject a waiting task and run the instance on (a rejection exits 0: you chose it).

    \b
    Example: procos task complete 2f14b7ad-58dc-4df7-ba11-26e078ab0967 --approve --comment "counts checked"
    """
    if approve is None:
        raise click.UsageError("give a decision: --approve or --reject")
    _finish(_api().complete_task(task_id, approve, comment, **actor), as_json, decided=True)
