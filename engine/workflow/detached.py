"""Instances run by workers: what a worker does with the job of one instance.

A job names an instance. The worker runs it when it is ``queued`` (started with ``--detach``, by a
schedule, or continued after an approval while workers run), or when it is ``running`` but its runner is
gone (a worker killed mid-step: the job was retried after the lease, see :mod:`.leases`); then it resumes
from the last saved step: the step that was running runs again, completed steps never do. Anything else
(waiting for an approver, finished, held by a live runner) leaves the job with nothing to do. Two workers
given the same instance race on the revision-checked claim; one wins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import history
from .runner import InstanceRun, effective_state, load_workflow
from .store import ConcurrentUpdate


def run_queued(svc: Any, instance_id: str, *, worker: str,
               stop_requested: Callable[[], bool] = lambda: False) -> str:
    """Run ``instance_id`` on this worker if it is queued or its runner died; return its state afterwards."""
    from .serial import serializer as _serializer

    row = svc.store.get_instance(instance_id)
    state = effective_state(row, svc.store)
    if state == "queued":
        kind = "dequeued"
    elif state == "interrupted" and row.status == "running":
        kind = "resumed"
    else:
        return state
    run = InstanceRun(svc.settings, svc.store, row, load_workflow(_serializer(), row.state_json), _serializer())
    run.stop_requested = stop_requested
    entry = history.entry(kind, worker=worker, previous_state=state,
                          **({"previous_runner": f"{row.runner_host}:{row.runner_pid}"} if kind == "resumed" else {}))
    try:
        run.claim([entry])
    except ConcurrentUpdate:
        return "running"  # another worker claimed it first
    return svc._drive(run)["state"]
