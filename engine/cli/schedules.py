"""``procos scheduler run`` and ``procos schedule list|run-now``: schedules from PROCOS_HOME/schedules.yaml."""

from __future__ import annotations

from typing import Any

import click

from .actor import actor_options
from .workflow import _print, json_flag


def _api() -> Any:
    from engine.api import processes

    return processes


@click.group("scheduler")
def scheduler_group() -> None:
    """The scheduler daemon: starts the due runs of PROCOS_HOME/schedules.yaml.

    \\b
    Example: PROCOS_TOKEN=$(cat scheduler.token) procos scheduler run
    """


@scheduler_group.command("run")
@click.option("--tick", type=click.FloatRange(0.1, 60), default=1.0, show_default=True,
              help="Seconds between looks at the schedules.")
@actor_options
def scheduler_run(tick: float, actor: dict) -> None:
    """Start due runs (queued for workers) until SIGTERM, as the authenticated user.

    Any number of schedulers may run against the same state: each due run starts exactly one
    instance. Run it with the token of a user holding the roles its processes need (procos user add
    scheduler --role Owner). Runs missed while no scheduler ran follow each entry's missed: skip|once.

    \\b
    Example: PROCOS_TOKEN=$(cat scheduler.token) procos scheduler run
    """
    click.echo("scheduler started; stop with SIGTERM or Ctrl-C", err=True)
    result = _api().run_scheduler(tick=tick, **actor)
    click.echo(f"scheduler {result['scheduler']} stopped: {result['started']} started, "
               f"{result['skipped']} skipped, {result['errors']} failed to start", err=True)


@click.group("schedule")
def schedule_group() -> None:
    """Schedules (PROCOS_HOME/schedules.yaml): list them, run one now.

    \\b
    Example: procos schedule list
    """


@schedule_group.command("list")
@json_flag
def schedule_list(as_json: bool) -> None:
    """List the schedules with their next run and their last run's instance and state.

    \\b
    Example: procos schedule list --json
    """
    from .tables import table

    found = _api().list_schedules()
    _print(found, as_json, table(found, [
        ("NAME", lambda s: s["name"]), ("PROCESS", lambda s: s["process"]),
        ("WHEN", lambda s: s.get("cron") or f"every {s.get('every')}"), ("NEXT", lambda s: s["next_run"][:19]),
        ("LAST", lambda s: (s["last_run"] or "-")[:19]), ("INSTANCE", lambda s: s["last_instance"] or "-"),
        ("STATE", lambda s: s["last_state"] or "-")], empty="no schedules (PROCOS_HOME/schedules.yaml)"))


@schedule_group.command("run-now")
@click.argument("name")
@actor_options
@json_flag
def schedule_run_now(name: str, actor: dict, as_json: bool) -> None:
    """Start schedule NAME now (queued for a worker), outside its cadence.

    \\b
    Example: procos schedule run-now hourly-delta
    """
    result = _api().run_schedule_now(name, **actor)
    _print(result, as_json, f"schedule {name}: instance {result['instance_id']} queued")
