"""The approvals inbox of :class:`~.service.WorkflowService`: list, show and complete user tasks.

A task is listed to a user only when they may complete it (lane role, separation of duties, see
:mod:`.lanes`), with what it asks to approve; completing it records the decision in the same
revision-checked save that moves the instance on, so two approvers at once cannot both win.
"""

from __future__ import annotations

import uuid
from typing import Any

from engine.errors import InstanceBusy, NotAuthorized, TaskNotFound, WorkflowError

from . import history
from .identity import Identity
from .lanes import refusal
from .runner import current_data, load_workflow
from .serial import serializer as _serializer
from .store import ConcurrentUpdate, InstanceRow


class TaskInbox:
    """Mixed into WorkflowService (uses its store, ``_actor``, ``_open``, ``_refuse``, ``_drive``, ...)."""

    def list_tasks(self, user: Identity | str | None = None) -> list[dict]:
        """The waiting user tasks ``user`` may complete (lane role held, separation of duties)."""
        actor = self._actor(user, "list tasks")
        starters = {r.instance_id: r.started_by for r in self.store.list_instances()}
        return [self._describe_task(t, self.store.get_instance(t.instance_id)) for t in self.store.list_tasks()
                if refusal(actor, t.lane, started_by=starters.get(t.instance_id, ""),
                           environment=t.environment) is None]

    def show_task(self, task_id: str) -> dict:
        """One waiting task in full: what is to be decided, the instance's request, who may decide."""
        found = self.store.find_task(task_id)
        if found is None:
            raise TaskNotFound(f"no waiting task {task_id!r} (already completed, or never existed)",
                               hint="procos task list shows the tasks you may complete")
        row = self.store.get_instance(found.instance_id)
        data = current_data(load_workflow(_serializer(), row.state_json))
        return {**self._describe_task(found, row, data), "data": data, "environment": found.environment,
                "separation_of_duties": found.environment != "dev"}

    def _describe_task(self, t: Any, row: InstanceRow | None, data: dict | None = None) -> dict:
        """A task with what is to be approved: the request's source/target/bundle and its figures."""
        problem = None
        if data is None and row is not None:
            try:
                data = current_data(load_workflow(_serializer(), row.state_json))
            except WorkflowError as exc:  # one unreadable instance must not hide everyone's inbox
                problem = exc.message
        data = data or {}
        subject = {k: data[k] for k in ("source", "target", "bundle", "out_dir", "mode", "snapshot_id",
                                        "content_hash", "record_count", "bytes", "signature") if k in data}
        return {"task_id": t.task_id, "instance_id": t.instance_id, "process": t.process, "name": t.name,
                "lane": t.lane, "started_by": row.started_by if row else None,
                "waiting_since": row.updated_at if row else None, "subject": subject,
                **({"problem": problem} if problem else {})}

    def complete_task(self, task_id: str, user: Identity | str | None, approve: bool,
                      comment: str | None = None, *, wait: bool = True) -> dict:
        """Record ``user``'s decision on a waiting task and run the instance on (``wait=False``: in a
        background runner). Refusals (role, four eyes) raise NotAuthorized and are audited; a task
        completed meanwhile raises TaskNotFound."""
        from SpiffWorkflow.util.task import TaskState

        actor = self._actor(user, "complete a task")
        found = self.store.find_task(task_id)
        if found is None:
            raise TaskNotFound(f"no waiting task {task_id!r} (already completed, or never existed)",
                               hint="procos task list shows the tasks you may complete")
        try:
            run = self._open(found.instance_id)
        except InstanceBusy as exc:  # another approver's command is running the instance on right now
            raise TaskNotFound(f"task {task_id} was already completed by someone else (its instance is running)",
                               hint=f"procos instance show {found.instance_id}") from exc
        task = run.wf.get_task_from_id(uuid.UUID(task_id))
        if task is None or task.state != TaskState.READY or not task.task_spec.manual:
            raise TaskNotFound(f"task {task_id} is no longer waiting")
        why = refusal(actor, task.task_spec.lane, started_by=run.row.started_by,
                      environment=str(task.data.get("environment", "prod")))
        if why:
            self._refuse(actor, "approve" if approve else "reject", why, run.row.instance_id,
                         **history.task_fields(task))
            raise NotAuthorized(f"task {task_id}: {why}", hint="ask a user holding the lane's role")
        task.set_data(approved=bool(approve), approver=actor.name, comment=comment or "")
        task.run()
        action = history.entry("user_action", by=actor.name, via=actor.via, decision="approve" if approve else "reject",
                               comment=comment or "", lane=task.task_spec.lane, **history.task_fields(task))
        from .queue import workers_running

        detach = workers_running(self.store, self.settings)
        try:
            if detach:  # workers run: the instance continues on one of them
                run.save("queued", [action, history.entry("queued", by=actor.name, queue="procos")])
            elif not wait:
                return self._hand_off(run, [action], {})
            else:
                run.claim([action])
        except ConcurrentUpdate as exc:
            raise TaskNotFound(f"task {task_id} was already completed by someone else",
                               hint=f"procos instance show {found.instance_id}") from exc
        if detach:
            self._enqueue(run)
            return self._result(run, "queued")
        return self._drive(run)
