"""``procos worker`` (run instances from the job queue) and ``procos worker status``."""

from __future__ import annotations

from typing import Any

import click

from .workflow import _print, json_flag


def _api() -> Any:
    from engine.api import processes

    return processes


@click.group("worker", invoke_without_command=True)
@click.option("--concurrency", type=click.IntRange(1, 64), default=1, show_default=True,
              help="Instances run at the same time (one thread each).")
@click.option("--queues", default=None, metavar="Q1,Q2", help="The queues to take jobs from (default: procos).")
@click.pass_context
def worker_group(ctx: click.Context, concurrency: int, queues: str | None) -> None:
    """Run process instances from the job queue, in the foreground, until SIGTERM (graceful).

    Any number of workers, on any machines sharing the state database (PROCOS_STATE_DSN; without it
    the queue lives in an embedded PostgreSQL under PROCOS_HOME, for one machine). A worker whose
    heartbeat stops for PROCOS_WORKER_LEASE_SECONDS (default 30) is presumed dead and another worker
    resumes its instances from their last saved step. On SIGTERM each running instance yields at its
    next step boundary and another worker continues it.

    \\b
    Example: procos worker --concurrency 2
    """
    if ctx.invoked_subcommand is not None:
        return
    names = [q.strip() for q in (queues or "").split(",") if q.strip()] or None
    click.echo(f"worker started (concurrency {concurrency}); stop with SIGTERM or Ctrl-C", err=True)
    result = _api().run_worker(concurrency=concurrency, queues=names)
    click.echo(f"worker {result['worker']} stopped after {result['jobs']} job(s)", err=True)


@worker_group.command("status")
@json_flag
def worker_status(as_json: bool) -> None:
    """List the workers, their heartbeat age and the instances each is running now.

    \\b
    Example: procos worker status --json
    """
    from .tables import table

    found = _api().worker_status()
    _print(found, as_json, table(found, [
        ("WORKER", lambda w: w["worker"]), ("HEARTBEAT", lambda w: f"{w['heartbeat_age_seconds']}s ago"),
        ("ALIVE", lambda w: "yes" if w["alive"] else "no"), ("INSTANCES", lambda w: ", ".join(w["instances"]) or "-")],
        empty="no workers registered"))
