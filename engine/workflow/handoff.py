"""Handing instances over: to the job queue for a worker (``detach``), or to a background runner process
(``wait=False``, the panel); and the worker's and the runner's side of it. Mixed into WorkflowService.
"""

from __future__ import annotations

from typing import Any

from engine.errors import ProcosError

from . import history
from .runner import InstanceRun, load_workflow
from .serial import serializer as _serializer


class Handoff:
    """Mixed into WorkflowService (uses its settings, store and ``_drive``/``_result``)."""

    def _enqueue(self, run: InstanceRun, queue: str | None = None) -> None:
        """Defer the job that runs ``run``'s instance; if the queue cannot take it, the instance says why."""
        from .queue import DEFAULT_QUEUE, enqueue

        try:
            enqueue(self.settings, run.row.instance_id, queue or DEFAULT_QUEUE)
        except ProcosError as exc:
            run.row.error, run.row.outcome = f"could not be queued: {exc.message}", "error"
            run.save("error", [history.entry("error", message=run.row.error, hint=exc.hint)], release=True)
            raise

    def continue_detached(self, instance_id: str, *, worker: str, stop_requested: Any = None) -> str:
        """A worker's job: run a queued instance, or resume one whose worker died (see :mod:`.detached`)."""
        from .detached import run_queued

        return run_queued(self, instance_id, worker=worker, stop_requested=stop_requested or (lambda: False))

    def _hand_off(self, run: InstanceRun, entries: list[dict], lent: dict[str, str]) -> dict:
        """Save ``entries`` with a new background process recorded as the runner, then let it go."""
        from . import background

        child = background.spawn(self.settings, run.row.instance_id)
        try:
            run.save("running", entries, runner=background.identity_of(child))
        except BaseException:
            background.abandon(child)
            raise
        background.release(child, lent)
        return self._result(run, "running")

    def run_handed_over(self, instance_id: str, pid: int) -> InstanceRun | None:
        """The instance handed to runner process ``pid`` (see :mod:`.background`), else None."""
        import socket

        row = self.store.get_instance(instance_id)
        if row.status != "running" or row.runner_pid != pid or row.runner_host != socket.gethostname():
            return None
        return InstanceRun(self.settings, self.store, row, load_workflow(_serializer(), row.state_json),
                           _serializer())

    def drive_handed_over(self, run: InstanceRun) -> dict:
        """Run a handed-over instance until it waits, completes or fails."""
        return self._drive(run)
