"""Running instances: every engine step is saved, so a killed runner leaves a resumable instance.

:class:`InstanceRun` holds one instance while this process advances it. It runs Spiff's engine steps
with a callback that saves the workflow (revision-checked) after every completed task, recording the
step in the history in the same transaction. A script task that was running when the runner died was
not saved as completed, so it runs again on retry; completed ones never do.

The stored ``status`` is ``running`` while a runner holds the instance (its pid, host and process
start time are stored with it); :func:`effective_state` reports ``interrupted`` when that runner is gone.
"""

from __future__ import annotations

import os
import socket
from typing import Any

from SpiffWorkflow.util.task import TaskState

from engine.errors import ProcosError, WorkflowError

from . import events, history
from .context import ScriptContext
from .outcomes import completed_outcome
from .scripts import ResolvedScript
from .settings import Settings
from .store import ConcurrentUpdate, InstanceRow, InstanceStore, TaskRow, now_iso

REMOTE_LEASE_SECONDS = 600  # a runner on another host is presumed dead after this long without a save


def runner_identity() -> tuple[int, str, float]:
    import psutil

    pid = os.getpid()
    return pid, socket.gethostname(), psutil.Process(pid).create_time()


def runner_alive(row: InstanceRow, store: InstanceStore | None = None) -> bool:
    """Is the runner recorded on ``row`` still running?

    Same host: its pid runs and started when recorded. Another host: a registered worker (``store``) is
    alive while its heartbeat is younger than the worker lease; any other runner while it saved within
    :data:`REMOTE_LEASE_SECONDS`.
    """
    import psutil

    if row.runner_pid is None:
        return False
    if row.runner_host != socket.gethostname():
        import time
        from datetime import UTC, datetime

        from .leases import lease_seconds

        beat = store.worker_heartbeat_of(row.runner_host or "", row.runner_pid) if store is not None else None
        if beat is not None:
            return time.time() - beat < lease_seconds()
        updated = datetime.fromisoformat(row.updated_at.replace("Z", "+00:00"))
        return (datetime.now(UTC) - updated).total_seconds() < REMOTE_LEASE_SECONDS
    try:
        proc = psutil.Process(row.runner_pid)
        return proc.status() != psutil.STATUS_ZOMBIE and abs(proc.create_time() - (row.runner_started or 0)) < 1
    except psutil.Error:
        return False


def effective_state(row: InstanceRow, store: InstanceStore | None = None) -> str:
    """queued | running | waiting | completed | error | interrupted | cancelled (interrupted: stopped by Ctrl-C
    or SIGTERM, or its runner is gone)."""
    if row.status == "running" and not runner_alive(row, store):
        return "interrupted"
    return row.status


def load_workflow(serializer: Any, state_json: str) -> Any:
    """Deserialize a saved instance written by this serializer version; anything else is refused,
    because Spiff's upgrades of old versions ``eval`` timer expressions found in the saved state."""
    import json

    try:
        version = json.loads(state_json).get(serializer.VERSION_KEY)
    except (ValueError, AttributeError) as exc:
        raise WorkflowError(f"saved instance state is not a JSON object ({exc})") from None
    if version != serializer.VERSION:
        raise WorkflowError(f"saved instance state has serializer version {version!r}, not {serializer.VERSION!r}; "
                            "refused (old states are not upgraded: the upgrade would evaluate saved code)",
                            hint="finish or cancel such instances with the release that wrote them")
    return serializer.deserialize_json(state_json)


def current_data(wf: Any) -> dict:
    """The data a caller should see: the waiting task's, else the failed task's, else the last task's."""
    task = wf.get_next_task(state=TaskState.READY, manual=True) or wf.get_next_task(state=TaskState.ERROR)
    task = task or wf.last_task
    return dict(task.data) if task is not None else {}


class YieldRun(Exception):  # noqa: N818 - a signal, not an error
    """Raised at a step boundary when the worker running the instance is stopping (SIGTERM)."""


class InstanceRun:
    """This process's hold on one instance; also the script engine's hooks (:class:`ScriptHooks`)."""

    def __init__(self, settings: Settings, store: InstanceStore, row: InstanceRow, wf: Any,
                 serializer: Any) -> None:
        self.settings, self.store, self.row, self.wf, self.serializer = settings, store, row, wf, serializer
        from .execution import ProcosScriptEngine

        wf.script_engine = ProcosScriptEngine(self)
        self.failure: ProcosError | None = None
        self.stop_requested = lambda: False  # a worker stopping: yield the instance at the next step boundary
        self._pins: set[tuple[str, str, str]] | None = None
        self._started: dict | None = None

    # --- saving ---------------------------------------------------------------------------------

    def waiting_tasks(self) -> list[TaskRow]:
        rows = []
        for t in self.wf.get_tasks(state=TaskState.READY, manual=True):
            rows.append(TaskRow(task_id=str(t.id), instance_id=self.row.instance_id, process=self.row.process,
                                name=t.task_spec.bpmn_name or t.task_spec.bpmn_id, lane=t.task_spec.lane,
                                bpmn_id=t.task_spec.bpmn_id, environment=str(t.data.get("environment", "dev"))))
        return rows

    def save(self, status: str, entries: list[dict], *, claim: bool = False, release: bool = False,
             runner: tuple[int, str, float] | None = None) -> None:
        """Save the instance (revision-checked); ``claim`` records this process as its runner, ``runner``
        another process (a background runner this process handed the instance to)."""
        row = self.row
        row.status, row.updated_at = status, now_iso()
        row.state_json = self.serializer.serialize_json(self.wf)
        if claim:
            row.runner_pid, row.runner_host, row.runner_started = runner_identity()
        if runner is not None:
            row.runner_pid, row.runner_host, row.runner_started = runner
        if release:
            row.runner_pid = row.runner_host = row.runner_started = None
        self.store.update_instance(row, row.revision, self.waiting_tasks(), entries)

    def claim(self, entries: list[dict]) -> None:
        """Mark the instance as run by this process (fails if someone else saved it meanwhile)."""
        self.save("running", entries, claim=True)

    # --- the step loop --------------------------------------------------------------------------

    def advance(self) -> str:
        """Run engine steps until the instance completes, fails or waits; return the stored status."""
        try:
            self.wf.do_engine_steps(did_complete_task=self._did_complete)
        except YieldRun:
            self.save("queued", [history.entry("yielded", why="its worker is stopping; another worker continues "
                                               "from this step")], release=True)
            return "queued"
        except ConcurrentUpdate:
            raise  # someone else saved this instance meanwhile: their state wins, ours is dropped
        except ProcosError as exc:
            self.failure = self.failure or exc
        except Exception as exc:  # a gateway, condition or Spiff failure: the task is left in ERROR
            self.failure = self.failure or ProcosError(f"{type(exc).__name__}: {exc}",
                                                       hint="fix the cause, then: procos instance retry ID")
        return self.finish()

    def _did_complete(self, task: Any) -> None:
        entries = []
        if task.task_spec.bpmn_id is not None:
            entries.append(history.entry("step", state=TaskState.get_name(task.state),
                                         type=type(task.task_spec).__name__, **history.task_fields(task)))
        self.save("running", entries)
        if self.stop_requested():
            raise YieldRun

    def finish(self) -> str:
        failed = self.wf.get_tasks(state=TaskState.ERROR)
        entries: list[dict] = []
        row = self.row
        if failed or self.failure is not None:
            status, row.outcome = "error", "error"
            message = str(self.failure) if self.failure else f"task {failed[0].task_spec.bpmn_id} failed"
            row.error, row.exit_code = message, int(getattr(self.failure, "exit_code", 1) or 1)
            entries.append(history.entry("error", message=message, hint=getattr(self.failure, "hint", None),
                                         **(history.task_fields(failed[0]) if failed else {})))
        elif self.wf.is_completed():
            status, row.error, row.exit_code = "completed", None, None
            row.outcome = completed_outcome(self.wf, self.started_entry().get("outcomes") or {})
        else:
            status, row.error, row.outcome, row.exit_code = "waiting", None, None, None
        entries.append(history.entry("state", state=status, outcome=row.outcome))
        self.save(status, entries, release=True)
        if status == "error":
            self.emit("process_failed", {"process": row.process, "error": row.error, "outcome": "error"},
                      step=f"failed/{failed[0].id if failed else 'engine'}")
        if row.outcome:
            self.emit("instance_finished", {"process": row.process, "state": status, "outcome": row.outcome},
                      step="finished")
        return status

    def mark_interrupted(self, why: str) -> None:
        """Ctrl-C or SIGTERM: keep the last saved state, mark the instance ``interrupted``, let it go."""
        row = self.row
        row.status, row.updated_at, row.outcome = "interrupted", now_iso(), None
        row.runner_pid = row.runner_host = row.runner_started = None
        self.store.update_instance(row, row.revision, [], [history.entry(
            "interrupted", why=why, hint=f"procos instance retry {row.instance_id}")])

    # --- script hooks ---------------------------------------------------------------------------

    def started_entry(self) -> dict:
        """The instance's first ``started`` history entry (its pins, outcomes, variables), read once."""
        if self._started is None:
            self._started = next((h for h in self.store.history(self.row.instance_id)
                                  if h.get("kind") == "started"), {})
        return self._started

    def pins(self) -> set[tuple[str, str, str]]:
        """The scripts pinned at deployment, as recorded in the instance's first ``started`` entry
        (read once, when the first script asks; none recorded means no script may run)."""
        if self._pins is None:
            started = self.started_entry()
            self._pins = {(str(p.get("task")), str(p.get("script")), str(p.get("sha256")))
                          for p in started.get("scripts") or [] if isinstance(p, dict)}
        return self._pins

    def timeout(self, task: Any) -> float | None:
        """The script task's limit in seconds, as pinned in the ``started`` entry (None: no limit)."""
        for p in self.started_entry().get("scripts") or []:
            if isinstance(p, dict) and p.get("task") == task.task_spec.bpmn_id and p.get("timeout"):
                return float(p["timeout"])
        return None

    def script_refused(self, task: Any, script: ResolvedScript | None, error: ProcosError) -> None:
        self.failure = error
        self.store.add_history(self.row.instance_id, [history.entry(
            "refused", action="run_script", why=str(error), script=script.source if script else None,
            sha256=script.sha256 if script else None, **history.task_fields(task))])

    def context(self, task: Any, script: ResolvedScript, data: dict) -> ScriptContext:
        spec = task.task_spec
        emitted: dict[str, int] = {}

        def emit(name: str, fields: dict) -> None:  # the n-th event of this name in this run of the step
            n = emitted[name] = emitted.get(name, -1) + 1
            self.emit(name, fields, step=f"{spec.bpmn_id}/{task.id}/{n}")

        return ScriptContext(data=data, instance_id=self.row.instance_id, process=self.row.process,
                             task_id=spec.bpmn_id, task_name=spec.bpmn_name or spec.bpmn_id,
                             started_by=self.row.started_by, home=self.settings.home,
                             emit=emit, log=self.log)

    def progress_sink(self, task: Any) -> Any:
        """Where a running script's progress goes: the instance's progress row (``instance show``, panel)."""
        iid, step = self.row.instance_id, task.task_spec.bpmn_id

        def sink(update: dict) -> None:
            self.store.set_progress(iid, step, update)
        return sink

    def script_started(self, task: Any, script: ResolvedScript) -> None:
        self.store.add_history(self.row.instance_id, [history.entry(
            "script_started", script=script.source, sha256=script.sha256, **history.task_fields(task))])

    def script_finished(self, task: Any, script: ResolvedScript, error: ProcosError | None) -> None:
        outcome = "ok" if error is None else ("refused" if type(error).__name__ == "ScriptRefused" else "failed")
        if error is not None:
            self.failure = error
        self.store.add_history(self.row.instance_id, [history.entry(
            "script", script=script.source, sha256=script.sha256, process_file=script.process_file,
            outcome=outcome, error=str(error) if error else None,
            line=getattr(error, "line_number", None) or None, error_line=getattr(error, "error_line", None) or None,
            **history.task_fields(task))])

    def emit(self, name: str, fields: dict, step: str = "engine") -> None:
        """Record event ``name``; its id is stable for (instance, ``step``, attempt, name)."""
        attempt = sum(1 for h in self.store.history(self.row.instance_id) if h.get("kind") == "retry")
        event = events.make_event(name, self.row.instance_id, fields,
                                  event_id=events.event_id_for(self.row.instance_id, step, attempt, name))
        problem = events.emit(self.settings, self.store, event)
        entries = [history.entry("event", event=name)]
        if problem:
            entries.append(history.entry("warning", message=problem))
        self.store.add_history(self.row.instance_id, entries)

    def log(self, message: str) -> None:
        self.store.add_history(self.row.instance_id, [history.entry("log", message=message)])
