"""The job queue: procrastinate (a maintained PostgreSQL job queue) on the state database.

Where the queue lives: the database of ``PROCOS_STATE_DSN`` when it is set (workers on many machines
share it with the instance state), else an embedded PostgreSQL (the ``pgserver`` wheel) whose data folder
is ``PROCOS_HOME/queue-pg`` (:func:`queue_dir`), started on demand, so one machine needs nothing installed. The instance
state itself stays where it is (SQLite under ``PROCOS_HOME`` without a DSN).

One procrastinate task, :data:`TASK`, runs an instance: ``process start --detach``, a schedule, and an
approval completed while workers run all defer it with the instance id (a queueing lock per instance
keeps at most one waiting job per instance). Its schema is created on first use, under an advisory lock.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.errors import WorkflowError

from .settings import Settings

TASK = "procos.run_instance"
DEFAULT_QUEUE = "procos"
SCHEMA_LOCK = 7_402_117  # pg_advisory_lock key taken while the queue's schema is created


def queue_dsn(settings: Settings, *, start: bool = True) -> str | None:
    """The queue's libpq DSN; None when there is no DSN and ``start`` is false and no embedded queue exists."""
    if settings.state_dsn:
        return settings.state_dsn
    folder = queue_dir(settings)
    if not start and not folder.exists():
        return None
    from engine.repository.embedded import server_uri

    return server_uri(folder)


def queue_dir(settings: Settings) -> Path:
    """The embedded queue's data folder: ``PROCOS_QUEUE_DIR``, else ``PROCOS_HOME/queue-pg``.

    As root, pgserver runs PostgreSQL as its own system user, which cannot enter the private
    ``PROCOS_HOME``; then the default is ``$TMPDIR/procos-queue-<hash of PROCOS_HOME>`` (set
    ``PROCOS_QUEUE_DIR`` to a lasting folder that user may reach).
    """
    import hashlib
    import os
    import tempfile

    from engine.config import load_config

    configured = load_config().get("queue_dir")
    if configured:
        return Path(configured).expanduser().resolve()
    if os.geteuid() == 0:
        tag = hashlib.sha256(str(settings.home).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"procos-queue-{tag}"
    return settings.home / "queue-pg"


def ensure_schema(dsn: str) -> None:
    """Create procrastinate's tables in the queue database once (idempotent, safe with many workers)."""
    import psycopg
    from procrastinate.schema import SchemaManager

    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK,))
            try:
                found = conn.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0]
                if found is None:
                    conn.execute(SchemaManager.get_schema())
            finally:
                conn.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK,))
    except psycopg.Error as exc:
        from engine.secrets import redact_text

        raise WorkflowError(f"cannot prepare the job queue in {redact_text(dsn)}: "
                            f"{redact_text(' '.join(str(exc).split()))}",
                            hint="check PROCOS_STATE_DSN (a PostgreSQL 13+ database the user may create tables in)"
                            ) from exc


def make_app(dsn: str, job: Callable[..., Any] | None = None) -> Any:
    """A procrastinate App on ``dsn`` with :data:`TASK` registered (``job`` runs it; None: defer only)."""
    from procrastinate import App, PsycopgConnector

    app = App(connector=PsycopgConnector(conninfo=dsn, min_size=1, max_size=4))

    def run_instance(context: Any, instance_id: str) -> None:
        if job is None:
            raise WorkflowError("this process only defers jobs")
        job(context, instance_id)

    app.task(name=TASK, queue=DEFAULT_QUEUE, pass_context=True)(run_instance)
    return app


@contextlib.contextmanager
def opened_app(settings: Settings) -> Iterator[Any]:
    dsn = queue_dsn(settings)
    assert dsn is not None
    ensure_schema(dsn)
    app = make_app(dsn)
    with app.open():
        yield app


def enqueue(settings: Settings, instance_id: str, queue: str = DEFAULT_QUEUE) -> int | None:
    """Defer the job that runs ``instance_id``; returns its job id (None when one is already waiting)."""
    from procrastinate.exceptions import AlreadyEnqueued

    with opened_app(settings) as app:
        task = app.tasks[TASK].configure(queue=queue, queueing_lock=f"instance:{instance_id}")
        try:
            return task.defer(instance_id=instance_id)
        except AlreadyEnqueued:
            return None


def workers_running(store: Any, settings: Settings) -> bool:
    """Whether any worker has a live heartbeat in the state store (then approvals continue on a worker)."""
    import time

    from .leases import lease_seconds

    return any(time.time() - w["heartbeat"] < lease_seconds() for w in store.list_workers())
