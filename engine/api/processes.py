"""The front door for processes, instances, tasks and users (the CLI and the panel call only this).

Every function opens the workflow service (state under ``PROCOS_HOME``), does one operation and closes
it. Who acts is established here, never taken on trust from a name: pass ``actor`` (an
:class:`~engine.workflow.identity.Identity` the panel got from a login), or let the function
authenticate from ``token`` (else ``PROCOS_TOKEN``, else the login name); ``as_user`` is an assertion
that must match (``--as``), refused and audited otherwise.

This module sits above :mod:`engine.workflow` (the scripts of a process call the library functions of
:mod:`engine.api`, which sit below it); import it as ``from engine.api import processes``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import NotAuthorized
from engine.workflow import WorkflowService
from engine.workflow.identity import Identity, read_token_file

__all__ = [
    "Identity", "add_user", "instance_diagram", "list_events", "refresh_identity", "render_demo", "run_demo", "audit_log", "authenticate", "cancel_instance", "complete_task", "issue_token",
    "list_instances", "list_processes", "list_tasks", "list_users", "login", "remove_user", "retry_instance",
    "set_password", "show_instance", "show_process", "show_task", "start_process", "token_from_file",
    "list_schedules", "run_scheduler", "run_schedule_now", "run_worker", "worker_status",
]


@contextmanager
def _service() -> Iterator[WorkflowService]:
    svc = WorkflowService()
    try:
        yield svc
    finally:
        svc.close()


def token_from_file(path: str | Path) -> str:
    """The token in a ``--token-file`` (refused when other users may read the file)."""
    return read_token_file(path)


def _who(svc: WorkflowService, actor: Identity | None, token: str | None, as_user: str | None,
         action: str) -> Identity:
    if actor is not None:
        if as_user is not None and as_user != actor.name:
            why = f"--as {as_user} was given, but the caller is logged in as {actor.name!r}"
            svc.directory.refuse(actor.name, action, why, asserted=as_user)
            raise NotAuthorized(why, hint="act as yourself, or log in as that user")
        return actor
    return svc.authenticate(token=token, as_user=as_user, action=action)


def authenticate(*, token: str | None = None, as_user: str | None = None, action: str = "act") -> Identity:
    """The identity that acts (token, else login name); ``as_user`` must match it."""
    with _service() as svc:
        return svc.authenticate(token=token, as_user=as_user, action=action)


def login(name: str, password: str, *, client: str | None = None) -> Identity | None:
    """The identity for a correct user name and panel password, else None (the failure is audited).

    Failed logins are rate-limited per user name and per ``client`` (the caller's address), persisted in
    the state database: past the limit this raises LoginThrottled (exit 77, audited) without checking
    the password (see :mod:`engine.workflow.throttle`)."""
    with _service() as svc:
        return svc.directory.login(name, password, client)


def refresh_identity(identity: Identity) -> Identity | None:
    """``identity`` as the user store holds it now (roles changed meanwhile), or None when the user is gone.

    The panel calls this on every page view, so a removed user or a withdrawn role takes effect at once."""
    with _service() as svc:
        now = svc.directory.identity(identity.name, via=identity.via)
    return now if now.known else None


def run_demo(folder: str | Path | None = None, *, count: int = 2_000, dim: int = 64) -> dict[str, Any]:
    """The lift-and-shift playbook in its own folder (dev there only): ``{"passed", "folder", "bundle", ...}``."""
    from engine.workflow.playbook import run_demo as play

    return play(folder, count=count, dim=dim)


def render_demo(report: dict[str, Any]) -> str:
    """The demo report as text: PASS or FAIL first."""
    from engine.workflow.playbook import render

    return render(report)


# --- processes and instances ------------------------------------------------------------------------


def list_processes() -> list[dict[str, Any]]:
    """Every process file found: ``[{"name", "version", "file", "warnings"}]`` (``error`` when unusable)."""
    with _service() as svc:
        return svc.list_processes()


def show_process(name: str) -> dict[str, Any]:
    """``{"name", "version", "file", "lane", "variables": [{"name","type","required","default","description"}]}``."""
    with _service() as svc:
        return svc.show_process(name)


def start_process(name: str, variables: dict[str, Any] | None = None, *, actor: Identity | None = None,
                  token: str | None = None, as_user: str | None = None, cwd: str | Path | None = None,
                  wait: bool = True, detach: bool = False) -> dict[str, Any]:
    """Start process ``name`` and run it until it waits, completes or fails (``detach``: leave it
    ``queued`` for a worker and return at once; ``wait=False``: run it in a background process).

    Returns ``{"instance_id", "state", "outcome", "exit_code", "data"}``. Variables are checked against the
    process's declarations first (InvalidVariables, exit 2, and no instance); relative paths are made
    absolute against ``cwd`` (default: the current folder). ``wait=False`` returns as soon as the instance
    exists (state ``running``): a background runner process runs it, and ``show_instance`` follows it.
    """
    with _service() as svc:
        who = _who(svc, actor, token, as_user, f"start {name}")
        return svc.start_process(name, variables, who, cwd=cwd, wait=wait, detach=detach)


def list_instances() -> list[dict[str, Any]]:
    with _service() as svc:
        return svc.list_instances()


def show_instance(instance_id: str) -> dict[str, Any]:
    """``{"instance_id", "state", "outcome", "exit_code", "data", "history", "process", "version",
    "started_by", "started_at", "updated_at", "error", "tasks", "progress"}``."""
    with _service() as svc:
        return svc.show_instance(instance_id)


def instance_diagram(instance_id: str) -> dict[str, Any]:
    """The instance's BPMN diagram and activity states: ``{"xml", "file", "version", "note", "completed",
    "active", "failed"}`` (BPMN element ids; ``xml`` is None, with a ``note``, when the file changed)."""
    from engine.workflow.diagram import instance_diagram as diagram

    with _service() as svc:
        shown = svc.show_instance(instance_id)
    return diagram(shown, shown["history"])


def list_events(event: str | None = None) -> list[dict[str, Any]]:
    """Stored events, oldest first (only those named ``event`` when given)."""
    with _service() as svc:
        found = svc.store.events()
    return [e for e in found if event is None or e.get("event") == event]


def retry_instance(instance_id: str, *, variables: dict[str, Any] | None = None, actor: Identity | None = None,
                   token: str | None = None, as_user: str | None = None, cwd: str | Path | None = None,
                   wait: bool = True) -> dict[str, Any]:
    """Continue an instance in error or interrupted; ``variables`` change variables first (audited).
    ``wait=False``: a background runner continues it."""
    with _service() as svc:
        return svc.retry_instance(instance_id, _who(svc, actor, token, as_user, f"retry {instance_id}"),
                                  variables=variables, cwd=cwd, wait=wait)


def cancel_instance(instance_id: str, *, actor: Identity | None = None, token: str | None = None,
                    as_user: str | None = None) -> dict[str, Any]:
    with _service() as svc:
        return svc.cancel_instance(instance_id, _who(svc, actor, token, as_user, f"cancel {instance_id}"))


# --- tasks ---------------------------------------------------------------------------------------


def list_tasks(*, actor: Identity | None = None, token: str | None = None, as_user: str | None = None
               ) -> list[dict[str, Any]]:
    """The waiting tasks the acting user may complete."""
    with _service() as svc:
        return svc.list_tasks(_who(svc, actor, token, as_user, "list tasks"))


def show_task(task_id: str) -> dict[str, Any]:
    """One waiting task in full: ``{"task_id", ..., "subject", "data", "environment"}``."""
    with _service() as svc:
        return svc.show_task(task_id)


def complete_task(task_id: str, approve: bool, comment: str | None = None, *, actor: Identity | None = None,
                  token: str | None = None, as_user: str | None = None, wait: bool = True) -> dict[str, Any]:
    """Approve or reject a waiting task as the acting user, and run the instance on (``wait=False``: the
    decision is recorded before this returns, a background runner runs the rest)."""
    with _service() as svc:
        who = _who(svc, actor, token, as_user, f"complete task {task_id}")
        return svc.complete_task(task_id, who, approve, comment, wait=wait)


# --- users ---------------------------------------------------------------------------------------


def add_user(name: str, roles: list[str], *, actor: Identity | None = None, token: str | None = None,
             as_user: str | None = None) -> dict[str, Any]:
    """Create a user: ``{"user", "roles", "token"}``; the token is shown only here (stored as a hash)."""
    with _service() as svc:
        return svc.directory.add(_who(svc, actor, token, as_user, f"add user {name}"), name, roles)


def list_users(*, actor: Identity | None = None, token: str | None = None, as_user: str | None = None
               ) -> list[dict[str, Any]]:
    with _service() as svc:
        return svc.directory.list(_who(svc, actor, token, as_user, "list users"))


def remove_user(name: str, *, actor: Identity | None = None, token: str | None = None,
                as_user: str | None = None) -> dict[str, Any]:
    with _service() as svc:
        return svc.directory.remove(_who(svc, actor, token, as_user, f"remove user {name}"), name)


def issue_token(name: str, *, actor: Identity | None = None, token: str | None = None,
                as_user: str | None = None) -> dict[str, Any]:
    """A new token for ``name``, revoking the old one: ``{"user", "roles", "token"}``."""
    with _service() as svc:
        return svc.directory.new_token(_who(svc, actor, token, as_user, f"issue a token for {name}"), name)


def set_password(name: str, password: str, *, actor: Identity | None = None, token: str | None = None,
                 as_user: str | None = None) -> dict[str, Any]:
    """Set ``name``'s panel password (stored as an argon2id hash)."""
    with _service() as svc:
        return svc.directory.set_password(_who(svc, actor, token, as_user, f"set the password of {name}"),
                                          name, password)


def audit_log(*, limit: int | None = None, actor: Identity | None = None, token: str | None = None,
              as_user: str | None = None) -> list[dict[str, Any]]:
    """Refusals and user changes, oldest first (an Admin's view)."""
    with _service() as svc:
        who = _who(svc, actor, token, as_user, "read the audit log")
        svc.directory.require(who, "Admin", "read the audit log")
        return svc.store.audit(limit)


# --- workers and schedules ---------------------------------------------------------------------------


def run_worker(*, concurrency: int = 1, queues: list[str] | None = None) -> dict[str, Any]:
    """Run instances from the job queue until SIGTERM (see :mod:`engine.workflow.worker`): ``{"worker", "jobs"}``."""
    from engine.workflow.worker import run_worker as serve

    return serve(concurrency=concurrency, queues=queues)


def worker_status() -> list[dict[str, Any]]:
    """``[{"worker", "host", "pid", "heartbeat_age_seconds", "instances": [...]}]`` of every registered worker."""
    from engine.workflow.worker import worker_status as status

    return status()


def list_schedules() -> list[dict[str, Any]]:
    """``[{"name", "process", "cron" | "every", "next_run", "last_run", "last_instance", "last_state"}]``."""
    from engine.workflow.scheduler import list_schedules as listing

    return listing()


def run_scheduler(*, token: str | None = None, as_user: str | None = None, tick: float = 1.0) -> dict[str, Any]:
    """Start due schedule runs until SIGTERM, as the authenticated user (e.g. ``scheduler``)."""
    from engine.workflow.scheduler import Scheduler

    with _service() as svc:
        who = svc.authenticate(token=token, as_user=as_user, action="run the scheduler")
    return Scheduler(who).run(tick=tick)


def run_schedule_now(name: str, *, token: str | None = None, as_user: str | None = None) -> dict[str, Any]:
    """Start schedule ``name`` now (queued for a worker): ``{"schedule", "instance_id", "state"}``."""
    from engine.workflow.scheduler import Scheduler

    with _service() as svc:
        who = svc.authenticate(token=token, as_user=as_user, action=f"run schedule {name} now")
    return Scheduler(who).run_now(name)
