"""``procos worker``: run process instances from the job queue until stopped (SIGTERM: gracefully).

A worker is a procrastinate worker (:mod:`.queue`) whose one task runs an instance with a fresh
:class:`~.service.WorkflowService` per job, ``concurrency`` jobs at a time (threads). Beside it:

- a heartbeat, every :func:`~.leases.heartbeat_interval` seconds, in the state store's ``workers`` table
  (``procos worker status``) and procrastinate's own;
- recovery, every few seconds: jobs held by a worker whose heartbeat is older than the lease are put back
  in the queue, so a killed worker's instance resumes on another worker from its last saved step.

SIGTERM (or Ctrl-C) stops taking jobs; each running instance yields at its next step boundary (saved
``queued``, its job deferred again) so another worker continues it, and the worker exits. A worker whose
late script thread could not be stopped (see :mod:`.timeouts`) stops the same way.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from typing import Any

from .leases import heartbeat_interval, lease_seconds
from .queue import DEFAULT_QUEUE, ensure_schema, make_app, queue_dsn
from .settings import Settings, load_settings
from .store import open_store

log = logging.getLogger(__name__)
PRUNE_AFTER_SECONDS = 3600  # registry rows of workers silent this long are removed


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def run_worker(settings: Settings | None = None, *, concurrency: int = 1, queues: list[str] | None = None,
               polling_interval: float = 1.0) -> dict[str, Any]:
    """Run a worker in the foreground until SIGTERM/SIGINT; returns ``{"worker", "jobs"}`` when it stops."""
    settings = settings or load_settings()
    dsn = queue_dsn(settings)
    assert dsn is not None
    ensure_schema(dsn)
    name = worker_name()
    stopping = threading.Event()
    done = {"jobs": 0}

    def job(context: Any, instance_id: str) -> None:
        from .service import WorkflowService

        svc = WorkflowService(settings)
        try:
            state = svc.continue_detached(instance_id, worker=name, stop_requested=stopping.is_set)
            if state == "queued":  # yielded at a step boundary: the next worker continues
                svc._enqueue(svc._open(instance_id))
        finally:
            svc.close()
            done["jobs"] += 1

    app = make_app(dsn, job)
    registry = open_store(settings)
    registry.register_worker(name, socket.gethostname(), os.getpid(), list(queues or [DEFAULT_QUEUE]), concurrency)
    try:
        asyncio.run(_serve(app, registry, name, stopping, concurrency=concurrency,
                           queues=list(queues or [DEFAULT_QUEUE]), polling_interval=polling_interval))
    finally:
        registry.unregister_worker(name)
        registry.close()
    return {"worker": name, "jobs": done["jobs"]}


async def _serve(app: Any, registry: Any, name: str, stopping: threading.Event, *, concurrency: int,
                 queues: list[str], polling_interval: float) -> None:
    from procrastinate import worker as procrastinate_worker

    lease = lease_seconds()
    async with app.open_async():
        w = procrastinate_worker.Worker(
            app, queues=queues, name=name, concurrency=concurrency, fetch_job_polling_interval=polling_interval,
            abort_job_polling_interval=max(1.0, polling_interval), update_heartbeat_interval=heartbeat_interval(),
            stalled_worker_timeout=lease, shutdown_graceful_timeout=None, additional_context={"worker": name})
        original_stop = w.stop

        def stop() -> None:
            stopping.set()  # running instances yield at their next step boundary
            original_stop()

        w.stop = stop  # type: ignore[method-assign]
        side = [asyncio.create_task(_heartbeat(registry, name, w)), asyncio.create_task(_recover(app, lease))]
        try:
            await w.run()
        finally:
            for task in side:
                task.cancel()
            await asyncio.gather(*side, return_exceptions=True)


async def _heartbeat(registry: Any, name: str, w: Any) -> None:
    from .timeouts import abandoned

    while True:
        await asyncio.to_thread(registry.worker_heartbeat, name)
        if abandoned():
            log.error("a late script thread could not be stopped; worker %s stops taking jobs and exits", name)
            w.stop()
        await asyncio.sleep(heartbeat_interval())


async def _recover(app: Any, lease: float) -> None:
    """Put back in the queue the jobs of workers whose heartbeat is older than the lease."""
    from procrastinate.exceptions import ProcrastinateException

    while True:
        await asyncio.sleep(max(0.5, lease / 3))
        try:
            for job in await app.job_manager.get_stalled_jobs(seconds_since_heartbeat=lease):
                log.warning("job %s (%s) was held by a worker silent for %ss: retrying it", job.id,
                            job.task_kwargs.get("instance_id"), lease)
                await app.job_manager.retry_job(job)
        except ProcrastinateException as exc:  # another worker retried it first, or the database blinked
            log.info("recovery pass: %s", exc)


def worker_status(settings: Settings | None = None) -> list[dict[str, Any]]:
    """``[{"worker", "host", "pid", "heartbeat_age_seconds", "instances": [...]}]``: every registered worker
    and the ids of the instances it is running now."""
    settings = settings or load_settings()
    store = open_store(settings)
    try:
        store.prune_workers(PRUNE_AFTER_SECONDS)
        running = [r for r in store.list_instances() if r.status == "running"]
        now = time.time()
        return [{"worker": w["worker"], "host": w["host"], "pid": w["pid"],
                 "heartbeat_age_seconds": round(now - w["heartbeat"], 1), "queues": w["queues"],
                 "concurrency": w["concurrency"], "started_at": w["started_at"],
                 "alive": now - w["heartbeat"] < lease_seconds(),
                 "instances": [r.instance_id for r in running if r.runner_host == w["host"] and r.runner_pid == w["pid"]]}
                for w in store.list_workers()]
    finally:
        store.close()
