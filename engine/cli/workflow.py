"""``procos process ...``: thin shells over :mod:`engine.api.processes` (``instance`` and ``task`` live in
:mod:`.instances` and :mod:`.tasks`).

Commands that run an instance (``process start``, ``instance retry``, ``task complete``) run it until
it completes, fails or waits on a user task, print ``{"instance_id", "state", "outcome", "exit_code",
"data"}`` with ``--json``, and exit with the outcome's code (see ``procos --help``).
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
    elif result["state"] == "queued":
        hint = f"\na worker runs it (procos worker status); follow it: procos instance show {result['instance_id']} --follow"
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
    """BPMN process definitions (processes/ and PROCOS_PROCESSES): list, show, start.

    \b
    Example: procos process show import_snapshot
    """


@process_group.command("list")
@json_flag
def process_list(as_json: bool) -> None:
    """List the processes found, with their content-hash versions.

    \b
    Example: procos process list
    """
    from .tables import table

    found = _api().list_processes()
    _print(found, as_json, table(found, [("NAME", lambda p: p["name"]), ("VERSION", lambda p: p["version"] or "-"),
                                         ("FILE", lambda p: p["file"]), ("PROBLEM", lambda p: p.get("error", ""))],
                                 widest=70, empty="no processes found"))


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
@click.option("--detach", is_flag=True, help="Queue the instance for a worker (procos worker) and return at once "
              "with state queued.")
@actor_options
@json_flag
def process_start(name: str, variables: tuple[str, ...], detach: bool, actor: dict, as_json: bool) -> None:
    """Start process NAME and run it until it completes, fails or waits on a user task.

    Variables are checked first (procos process show NAME lists them): a missing, unknown or wrong one
    is a usage error (exit 2) and no instance is created. With --detach a worker runs it.

    \b
    Example: procos process start export_snapshot --var source=faiss:./kb --var out_dir=./snapshots
    """
    _finish(_api().start_process(name, parse_vars(variables), detach=detach, **actor), as_json)


