"""The workflow engine's Python API: one method per user operation (the CLI is a thin shell over it).

Every method returns plain JSON-ready values. Results of ``start_process``, ``complete_task`` and
``retry_instance`` are ``{"instance_id", "state", "data"}`` where ``state`` is one of running |
waiting | completed | error | interrupted | cancelled.

Who acts is an :class:`~.identity.Identity`. Methods take ``user`` as an Identity (the CLI and the panel
authenticate first, see :meth:`WorkflowService.authenticate`), as a user name (a trusted in-process caller
such as the demo), or None (authenticate from ``PROCOS_TOKEN`` or the login name).

The environment is the deployment's (``PROCOS_ENV`` / config, unset: prod), never the request's: a
``environment`` variable that differs is refused at start, and every instance carries the deployment's.
Passwords in variables (store URIs) are removed before anything is stored (see :mod:`engine.secrets`).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from engine.errors import (
    InstanceBusy,
    Interrupted,
    InvalidVariables,
    NotAuthorized,
    ProcosError,
    WorkflowError,
)
from engine.secrets import redact_value, runtime_secrets, secret_paths, secret_strings

from . import history
from .context import non_json_paths
from .handoff import Handoff
from .identity import ADMIN, Directory, Identity
from .inbox import TaskInbox
from .lanes import start_refusal
from .loader import Catalog
from .outcomes import exit_code as outcome_exit
from .runner import InstanceRun, current_data, effective_state, load_workflow, runner_alive
from .serial import serializer as _serializer
from .settings import Settings, load_settings
from .store import InstanceRow, InstanceStore, now_iso, open_store
from .variables import check_variables, retry_variables


def run_cancel_actions(data: dict) -> list[dict]:
    """Run the undo actions the instance's scripts registered with ``ctx.on_cancel``; report each."""
    from engine import api

    from .context import CANCEL_ACTIONS

    done = []
    for op, args in sorted((data.get("on_cancel") or {}).items()):
        if op not in CANCEL_ACTIONS or not isinstance(args, dict) or set(args) != set(CANCEL_ACTIONS[op]):
            done.append({"op": op, "error": "not a known clean-up action"})
            continue
        try:
            getattr(api, op)(**args)
            done.append({"op": op, **args})
        except ProcosError as exc:
            done.append({"op": op, **args, "error": exc.message})
    return done


def start_lane(spec: Any) -> str | None:
    """The lane of the process's start event (None when it has no lane)."""
    for ts in spec.task_specs.values():
        if type(ts).__name__ == "StartEvent" and getattr(ts, "bpmn_id", None):
            return ts.lane
    return None


class WorkflowService(TaskInbox, Handoff):
    """Processes, instances and user tasks under one ``Settings`` (default: from the environment)."""

    def __init__(self, settings: Settings | None = None, store: InstanceStore | None = None) -> None:
        self.settings = settings or load_settings()
        self.store = store or open_store(self.settings)
        self.catalog = Catalog(self.settings)
        self.directory = Directory(self.store, self.settings.roles_path)

    def close(self) -> None:
        self.store.close()

    # --- identities -----------------------------------------------------------------------------

    def authenticate(self, *, token: str | None = None, as_user: str | None = None, action: str = "act"
                     ) -> Identity:
        """The acting user from ``token`` (else ``PROCOS_TOKEN``, else the login name); ``as_user`` must match."""
        return self.directory.authenticate(token=token, as_user=as_user, action=action)

    def _actor(self, user: Identity | str | None, action: str) -> Identity:
        if isinstance(user, Identity):
            return user
        if isinstance(user, str):
            return self.directory.identity(user)
        return self.authenticate(action=action)

    def _refuse(self, actor: Identity, action: str, why: str, instance_id: str | None = None, **fields: Any) -> None:
        entry = history.entry("refused", by=actor.name, action=action, why=why, **fields)
        if instance_id is not None:
            self.store.add_history(instance_id, [entry])
            entry = {**entry, "instance_id": instance_id}
        self.store.add_audit(entry)

    # --- processes ------------------------------------------------------------------------------

    def list_processes(self) -> list[dict]:
        """Every process file found: name, version (content hash), file, diagram warnings or error
        (a file refused by the sandbox, or a process id defined in two files)."""
        return self.catalog.listing()

    def show_process(self, name: str) -> dict:
        """``{"name", "version", "file", "variables": [{"name","type","required","default","description"}]}``."""
        dep = self.catalog.deploy(name)
        return {"name": dep.name, "version": dep.version, "file": str(dep.path), "lane": start_lane(dep.spec),
                "variables": [v.to_json() for v in dep.variables or []],
                "declared": dep.variables is not None, "outcomes": dep.outcomes}

    def start_process(self, name: str, variables: dict | None = None, user: Identity | str | None = None,
                      *, cwd: str | Path | None = None, wait: bool = True, detach: bool = False,
                      queue: str | None = None) -> dict:
        """Deploy ``name`` (pin-checking its scripts), start an instance and run it until it waits,
        completes or fails. ``detach``: leave it ``queued`` for a worker (see :mod:`.queue`) and return;
        ``wait=False``: hand it to a background runner process and return at once, state ``running``
        (see :mod:`.background`; the panel uses it). Raises ScriptRefused (nothing started) when a
        script's pin does not match,
        NotAuthorized when ``user`` may not start it, InvalidVariables for a bad request (checked against
        the process's declared variables; relative paths are made absolute against ``cwd``, default the
        current folder)."""
        from SpiffWorkflow.bpmn.workflow import BpmnWorkflow
        from SpiffWorkflow.util.task import TaskState

        actor = self._actor(user, f"start {name}")
        variables = dict(variables or {})
        bad = non_json_paths(variables, "variables")
        if bad:
            raise InvalidVariables(f"process variables must be JSON values: {', '.join(bad)}")
        variables = self._deployment_environment(variables)
        dep = self.catalog.deploy(name)
        why = start_refusal(actor, start_lane(dep.spec))
        if why:
            self._refuse(actor, f"start {dep.name}", why)
            raise NotAuthorized(f"process {dep.name}: {why}", hint="ask a user holding that role to start it")
        variables = check_variables(dep.variables, variables, Path(cwd or Path.cwd()))
        removed, lent = secret_paths(variables), secret_strings(variables)
        variables = redact_value(variables)
        self.store.record_deployment(dep.name, dep.version, str(dep.path))
        wf = BpmnWorkflow(dep.spec, dep.subprocess_specs)
        for task in wf.get_tasks(state=TaskState.READY):
            task.set_data(**variables)
        row = InstanceRow(instance_id=uuid.uuid4().hex[:12], process=dep.name, version=dep.version,
                          status="running", started_by=actor.name, started_at=now_iso(), updated_at=now_iso())
        run = InstanceRun(self.settings, self.store, row, wf, _serializer())
        row.state_json = _serializer().serialize_json(wf)
        entries = [history.entry(
            "started", by=actor.name, via=actor.via, process=dep.name, version=dep.version, file=str(dep.path),
            variables=variables, environment=variables["environment"], outcomes=dep.outcomes,
            declared=[asdict(v) for v in dep.variables] if dep.variables is not None else None,
            scripts=[{"task": s.task, "script": s.source, "sha256": s.sha256,
                      **({"timeout": dep.timeouts[s.task]} if s.task in dep.timeouts else {})}
                     for s in dep.scripts])]
        if removed:
            entries.append(history.entry("secrets_removed", variables=removed,
                                         message="passwords in these variables were not stored; this run uses "
                                                 "them, later runs (after an approval, a retry) take them from "
                                                 "PGPASSWORD, ~/.pgpass or ?password_env=NAME"))
        if detach:
            row.status = "queued"
            entries.append(history.entry("queued", by=actor.name, queue=queue or "procos"))
            self.store.insert_instance(row, [], entries)
            self._enqueue(run, queue)
            return self._result(run, "queued")
        self.store.insert_instance(row, [], entries)
        if not wait:
            return self._hand_off(run, [], lent)
        run.claim([])
        with runtime_secrets(lent):  # this run only; never stored
            return self._drive(run)

    def _deployment_environment(self, variables: dict) -> dict:
        """``variables`` with the deployment's environment; a different one asked for is refused."""
        env = self.settings.environment
        asked = variables.get("environment")
        if asked is not None and asked != env:
            raise InvalidVariables(
                f"environment={asked!r} was asked for, but this deployment's environment is {env!r}; "
                "the environment is the deployment's, not the request's",
                hint="drop --var environment=...; the deployment sets it (PROCOS_ENV or environment: in config.yaml)")
        return {**variables, "environment": env}

    # --- instances ------------------------------------------------------------------------------

    def list_instances(self) -> list[dict]:
        return [{"instance_id": r.instance_id, "process": r.process, "state": effective_state(r, self.store),
                 "outcome": r.outcome or "", "started_by": r.started_by, "started_at": r.started_at,
                 "updated_at": r.updated_at} for r in self.store.list_instances()]

    def show_instance(self, instance_id: str) -> dict:
        row = self.store.get_instance(instance_id)
        wf = load_workflow(_serializer(), row.state_json)
        state = effective_state(row, self.store)
        return {"instance_id": row.instance_id, "state": state, "outcome": row.outcome or "",
                "exit_code": outcome_exit(state, row.outcome, row.exit_code), "data": current_data(wf),
                "history": self.store.history(instance_id), "process": row.process, "version": row.version,
                "started_by": row.started_by, "started_at": row.started_at, "updated_at": row.updated_at,
                "error": row.error,
                "tasks": [t.__dict__ for t in self.store.list_tasks() if t.instance_id == instance_id],
                "progress": self.store.progress(instance_id) if state == "running" else None}

    def retry_instance(self, instance_id: str, user: Identity | str | None = None, *,
                       variables: dict | None = None, cwd: str | Path | None = None, wait: bool = True) -> dict:
        """Continue an instance in error (re-running the failed task) or interrupted (from its last
        saved step; completed script tasks do not run again). ``variables`` change variables first
        (checked like at start, audited): a mistyped ``out_dir`` does not need a new instance."""
        from SpiffWorkflow.util.task import TaskState

        run = self._open(instance_id)
        actor = self._may_operate(user, run, "retry")
        user = actor.name
        state = effective_state(run.row, self.store)
        if state not in ("error", "interrupted"):
            raise WorkflowError(f"instance {instance_id} is {state}; only error or interrupted instances retry",
                                hint="a waiting instance continues with: procos task complete TASK_ID")
        changed, lent = retry_variables(run.started_entry().get("declared"), current_data(run.wf), variables or {}, cwd)
        entries = [history.entry("retry", by=user, previous_state=state)]
        touched = []
        for task in run.wf.get_tasks(state=TaskState.ERROR)[:1]:
            entries.append(history.entry("reset", **history.task_fields(task)))
            run.wf.reset_from_task_id(task.id)
            touched = [run.wf.get_task_from_id(task.id)]
        if changed:
            data = current_data(run.wf)
            entries.append(history.entry("variables_changed", by=user, changes={
                k: {"from": data.get(k), "to": v} for k, v in changed.items()}))
            for task in touched or run.wf.get_tasks(state=TaskState.READY):
                task.data.update(changed)
        run.row.error = None
        if not wait:
            return self._hand_off(run, entries, lent)
        run.claim(entries)
        with runtime_secrets(lent):
            return self._drive(run)

    def cancel_instance(self, instance_id: str, user: Identity | str | None = None) -> dict:
        run = self._open(instance_id)
        user = self._may_operate(user, run, "cancel").name
        state = effective_state(run.row, self.store)
        if state in ("completed", "cancelled", "running"):
            raise WorkflowError(f"instance {instance_id} is {state} and cannot be cancelled",
                                hint="a running instance can be cancelled once its runner stops")
        cleanup = run_cancel_actions(current_data(run.wf))
        failed = [c for c in cleanup if c.get("error")]
        if failed:
            run.save(run.row.status, [history.entry("cleanup", by=user, **c) for c in cleanup], release=True)
            raise WorkflowError(f"instance {instance_id} was not cancelled: its clean-up action "
                                f"{failed[0]['op']} failed ({failed[0]['error']})",
                                hint="fix the cause and run procos instance cancel again")
        run.wf.cancel()
        run.row.outcome, run.row.exit_code = "cancelled", None
        run.save("cancelled", [*(history.entry("cleanup", by=user, **c) for c in cleanup),
                               history.entry("cancelled", by=user, previous_state=state)], release=True)
        run.emit("instance_finished", {"process": run.row.process, "state": "cancelled", "outcome": "cancelled"})
        return self._result(run, "cancelled")


    # --- helpers --------------------------------------------------------------------------------

    def _may_operate(self, user: Identity | str | None, run: InstanceRun, action: str) -> Identity:
        """Retry and cancel: the starter, a user who may start the process, or an Admin."""
        actor = self._actor(user, f"{action} an instance")
        if actor.known and (actor.name == run.row.started_by or actor.has(ADMIN)
                            or start_refusal(actor, start_lane(run.wf.spec)) is None):
            return actor
        why = f"{actor.name!r} may not {action} instance {run.row.instance_id}: not its starter, an Admin, " \
              f"or a user who may start {run.row.process}"
        self._refuse(actor, action, why, run.row.instance_id)
        raise NotAuthorized(why, hint="ask the instance's starter or an administrator")

    def _open(self, instance_id: str) -> InstanceRun:
        row = self.store.get_instance(instance_id)
        if row.status == "running" and runner_alive(row, self.store):
            raise InstanceBusy(f"instance {instance_id} is being run by pid {row.runner_pid} on "
                               f"{row.runner_host}", hint="wait for it, or stop that runner first")
        wf = load_workflow(_serializer(), row.state_json)
        return InstanceRun(self.settings, self.store, row, wf, _serializer())

    def _drive(self, run: InstanceRun) -> dict:
        """Advance the instance; Ctrl-C or SIGTERM leaves it ``interrupted`` at its last saved step."""
        try:
            status = run.advance()
        except KeyboardInterrupt as exc:
            why = str(exc) or "Ctrl-C"
            run.mark_interrupted(f"interrupted by {why}")
            iid = run.row.instance_id
            raise Interrupted(f"{why}: instance {iid} is interrupted at its last saved step",
                              hint=f"resume it with: procos instance retry {iid}") from None
        return self._result(run, status)

    def _result(self, run: InstanceRun, status: str) -> dict:
        return {"instance_id": run.row.instance_id, "state": status, "outcome": run.row.outcome or "",
                "exit_code": outcome_exit(status, run.row.outcome, run.row.exit_code),
                "data": current_data(run.wf)}
