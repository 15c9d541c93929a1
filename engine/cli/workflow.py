"""``procos process|instance|task``: thin shells over :mod:`engine.api.processes`.

Commands that run an instance (``process start``, ``instance retry``, ``task complete``) run it until
it completes, fails or waits on a user task, print ``{"instance_id", "state", "data"}`` with
``--json``, and exit 1 when the instance ended in ``error``.
"""

from __future__ import annotations

import json
from typing import Any

import click

from .actor import actor_options


def _api() -> Any:
    from engine.api import processes

    return processes


def _print(value: Any, as_json: bool, human: str) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True) if as_json else human)


def _finish(result: dict, as_json: bool, *, decided: bool = False) -> None:
    """Print the result; exit with the outcome's code (a rejection the approver chose exits 0 for them)."""
    outcome = f" ({result['outcome']})" if result.get("outcome") else ""
    hint = ""
    if result["state"] == "error":
        hint = f"\nsee why: procos instance show {result['instance_id']}; then: procos instance retry {result['instance_id']}"
    elif result["state"] == "waiting":
        hint = f"\nwaiting for an approver: procos task list (instance {result['instance_id']})"
    _print(result, as_json, f"instance {result['instance_id']}: {result['state']}{outcome}{hint}")
    code = result.get("exit_code", 1 if result["state"] == "error" else 0)
    if decided and result.get("outcome") == "rejected":
        code = 0
    if code:
        raise click.exceptions.Exit(code)


def parse_vars(pairs: tuple[str, ...]) -> dict:
    """``key=value`` pairs; a value is parsed as JSON when it parses, else kept as a string."""
    out = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not key=value", param_hint="--var")
        try:
            out[key] = json.loads(raw)
        except ValueError:
            out[key] = raw
    return out


json_flag = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@click.group("process")
def process_group() -> None:
    """BPMN process definitions (processes/ and PROCOS_PROCESSES)."""


@process_group.command("list")
@json_flag
def process_list(as_json: bool) -> None:
    """List the processes found, with their content-hash versions."""
    found = _api().list_processes()
    lines = [f"{p['name']}\t{p['version'] or '-'}\t{p['file']}" + (f"\tERROR: {p['error']}" if "error" in p else "")
             for p in found]
    _print(found, as_json, "\n".join(lines) or "no processes found")


@process_group.command("show")
@click.argument("name")
@json_flag
def process_show(name: str, as_json: bool) -> None:
    """Show process NAME: its file, version, who may start it, and its variables.

    \b
    Example: procos process show export_snapshot
    """
    shown = _api().show_process(name)
    if as_json:
        _print(shown, True, "")
        return
    lines = [f"process   {shown['name']} (version {shown['version']})", f"file      {shown['file']}",
             f"start     {'role ' + shown['lane'] if shown['lane'] else 'any user of the store'}", ""]
    if not shown["declared"]:
        lines.append("variables: not declared (any --var is accepted)")
    else:
        width = max(len(v["name"]) for v in shown["variables"])
        lines.append(f"{'VARIABLE':<{width}}  {'TYPE':<7}  {'REQUIRED':<8}  {'DEFAULT':<9}  DESCRIPTION")
        for v in shown["variables"]:
            default = "-" if v["default"] is None else json.dumps(v["default"])
            lines.append(f"{v['name']:<{width}}  {v['type']:<7}  {'yes' if v['required'] else 'no':<8}  "
                         f"{default:<9}  {v['description']}")
    click.echo("\n".join(lines))


@process_group.command("start")
@click.argument("name")
@click.option("--var", "variables", multiple=True, metavar="KEY=VALUE", help="A process variable (repeatable).")
@actor_options
@json_flag
def process_start(name: str, variables: tuple[str, ...], actor: dict, as_json: bool) -> None:
    """Start process NAME and run it until it completes, fails or waits on a user task.

    Variables are checked first (procos process show NAME lists them): a missing, unknown or wrong one
    is a usage error (exit 2) and no instance is created.

    \b
    Example: procos process start export_snapshot --var source=faiss:./kb --var out_dir=./snapshots
    """
    _finish(_api().start_process(name, parse_vars(variables), **actor), as_json)


@click.group("instance")
def instance_group() -> None:
    """Process instances: list, show (history), retry, cancel."""


@instance_group.command("list")
@json_flag
def instance_list(as_json: bool) -> None:
    """List instances with their state."""
    found = _api().list_instances()
    lines = [f"{i['instance_id']}\t{i['process']}\t{i['state']}\t{i['started_by']}\t{i['started_at']}"
             for i in found]
    _print(found, as_json, "\n".join(lines) or "no instances")


@instance_group.command("show")
@click.argument("instance_id")
@json_flag
def instance_show(instance_id: str, as_json: bool) -> None:
    """Show an instance's state, data and full history/audit."""
    shown = _api().show_instance(instance_id)
    lines = [f"instance {shown['instance_id']} ({shown['process']} {shown['version']}): {shown['state']}"]
    if shown.get("error"):
        lines.append(f"error: {shown['error']}")
    for h in shown["history"]:
        rest = {k: v for k, v in h.items() if k not in ("time", "kind", "task_id")}
        lines.append(f"{h['time']}  {h['kind']:<14} {json.dumps(rest, sort_keys=True)}")
    _print(shown, as_json, "\n".join(lines))


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
    """Cancel an instance that is not running."""
    _finish(_api().cancel_instance(instance_id, **actor), as_json)


@click.group("task")
def task_group() -> None:
    """User tasks (approvals) in lanes."""


@task_group.command("list")
@actor_options
@json_flag
def task_list(actor: dict, as_json: bool) -> None:
    """List the waiting tasks you may complete."""
    found = _api().list_tasks(**actor)
    lines = [f"{t['task_id']}\t{t['instance_id']}\t{t['process']}\t{t['name']}\t{t['lane'] or '-'}" for t in found]
    _print(found, as_json, "\n".join(lines) or "no tasks you may complete")


@task_group.command("complete")
@click.argument("task_id")
@click.option("--approve/--reject", "approve", default=None, help="The decision (required).")
@click.option("--comment", default=None, help="A comment for the audit log.")
@actor_options
@json_flag
def task_complete(task_id: str, approve: bool | None, comment: str | None, actor: dict, as_json: bool) -> None:
    """Approve or reject a waiting task and run the instance on."""
    if approve is None:
        raise click.UsageError("give a decision: --approve or --reject")
    _finish(_api().complete_task(task_id, approve, comment, **actor), as_json, decided=True)
