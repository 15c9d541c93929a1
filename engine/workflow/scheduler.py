"""``procos scheduler run``: start the due runs of ``schedules.yaml``, once each, however many schedulers run.

Every tick each scheduler computes each schedule's latest occurrence (:mod:`.schedules`) and tries to
claim it in the state store (:meth:`~.store_runs.RunRecords.claim_schedule_run`); the one that wins
starts the instance detached (a worker runs it) as the scheduler's user. That user is whoever the
scheduler authenticated as (``PROCOS_TOKEN`` of e.g. ``scheduler``), so lanes hold: it needs the role
of each process's start lane, and a prod export it starts still waits for an approver.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
from datetime import UTC, datetime
from typing import Any

from engine.errors import ConfigError, ProcosError

from .schedules import GRACE_SECONDS, Schedule, iso, read_schedules, schedules_path
from .settings import Settings, load_settings

log = logging.getLogger(__name__)


class Scheduler:
    def __init__(self, user: Any, settings: Settings | None = None) -> None:
        from .service import WorkflowService

        self.user = user
        self.svc = WorkflowService(settings or load_settings())
        self.name = f"{socket.gethostname()}:{os.getpid()}"

    def schedules(self) -> list[Schedule]:
        return read_schedules(schedules_path(self.svc.settings.home))

    def run(self, *, tick: float = 1.0, max_ticks: int | None = None) -> dict[str, Any]:
        """Tick until SIGTERM/Ctrl-C (or ``max_ticks``); returns ``{"scheduler", "started", "skipped", "errors"}``.

        A signal lets the current tick finish (a claimed run is always started and recorded), then stops.
        """
        counts = {"scheduler": self.name, "started": 0, "skipped": 0, "errors": 0}
        stop = threading.Event()
        previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                previous[sig] = signal.signal(sig, lambda *_: stop.set())
        ticks = 0
        try:
            while not stop.is_set() and (max_ticks is None or ticks < max_ticks):
                for outcome in self.tick():
                    counts[outcome] += 1
                ticks += 1
                stop.wait(max(0.05, tick - (time.time() % tick)))
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.svc.close()
        return counts

    def tick(self, now: datetime | None = None) -> list[str]:
        """Start (or skip) every due occurrence this scheduler wins; one word per claimed run."""
        now = now or datetime.now(UTC)
        try:
            entries = self.schedules()
        except ConfigError as exc:
            log.error("%s", exc.message)
            return []
        done = []
        for entry in entries:
            outcome = self._due(entry, now)
            if outcome:
                done.append(outcome)
        return done

    def _due(self, entry: Schedule, now: datetime) -> str | None:
        store = self.svc.store
        occurrence = entry.previous(now)
        due = iso(occurrence)
        baseline = store.schedule_baseline(entry.name, due)  # first sighting: runs from the next occurrence
        last = store.last_schedule_run(entry.name, scheduled_only=True)
        if due <= max(baseline, last["due"] if last else baseline):
            return None
        if entry.missed == "skip" and (now - occurrence).total_seconds() > GRACE_SECONDS:
            if store.claim_schedule_run(entry.name, due, self.name, state="skipped"):
                log.info("schedule %s: occurrence %s was missed while no scheduler ran; skipped", entry.name, due)
                return "skipped"
            return None
        if not store.claim_schedule_run(entry.name, due, self.name):
            return None  # another scheduler won this occurrence
        return self._start(entry, due)

    def _start(self, entry: Schedule, due: str) -> str:
        try:
            result = self.svc.start_process(entry.process, dict(entry.variables), self.user, detach=True,
                                            queue=entry.queue)
        except ProcosError as exc:
            self.svc.store.finish_schedule_run(entry.name, due, instance_id=None, state="error", error=exc.message)
            log.error("schedule %s: could not start %s: %s", entry.name, entry.process, exc.message)
            return "errors"
        self.svc.store.finish_schedule_run(entry.name, due, instance_id=result["instance_id"], state="started")
        log.info("schedule %s: started %s instance %s for %s", entry.name, entry.process, result["instance_id"], due)
        return "started"

    def run_now(self, name: str) -> dict[str, Any]:
        """Start schedule ``name`` at once (recorded as a run-now run; the regular occurrences are unchanged)."""
        try:
            entry = next((s for s in self.schedules() if s.name == name), None)
            if entry is None:
                raise ConfigError(f"no schedule named {name!r} in {schedules_path(self.svc.settings.home)}",
                                  hint="procos schedule list shows them")
            due = iso(datetime.now(UTC))
            self.svc.store.claim_schedule_run(name, due, f"run-now:{self.user.name}")
            self._start(entry, due)
            run = self.svc.store.last_schedule_run(name)
            if run and run["state"] == "error":
                raise ProcosError(f"schedule {name}: {run['error']}")
            return {"schedule": name, "instance_id": run["instance_id"] if run else None, "state": "queued"}
        finally:
            self.svc.close()


def list_schedules(settings: Settings | None = None) -> list[dict[str, Any]]:
    """Each schedule with its next and last run: ``[{"name", "process", "cron" | "every", "next_run",
    "last_run", "last_instance", "last_state"}]``."""
    from .runner import effective_state
    from .service import WorkflowService

    svc = WorkflowService(settings or load_settings())
    try:
        now = datetime.now(UTC)
        out = []
        for entry in read_schedules(schedules_path(svc.settings.home)):
            last = svc.store.last_schedule_run(entry.name)
            state = last["state"] if last else None
            if last and last["instance_id"]:
                try:
                    state = effective_state(svc.store.get_instance(last["instance_id"]), svc.store)
                except ProcosError:
                    state = "unknown"
            out.append({**entry.to_json(), "variables": entry.variables, "next_run": iso(entry.next(now)),
                        "last_run": last["due"] if last else None,
                        "last_instance": last["instance_id"] if last else None, "last_state": state})
        return out
    finally:
        svc.close()
