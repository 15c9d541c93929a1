"""A load into a new or empty pgvector store through N connections, one per stream of rows.

One transaction cannot span connections, so the new table is made and committed first, as
``{table}__staging`` with its secondary indexes, by a connection of its own. Each stream then loads
into it through its own connection and transaction (:func:`pg_writes.load_rows`: one COPY while its
ids ascend) and commits. The writer's transaction, which took the store's state-row lock before any
of this (so no other writer runs, and no open-time cleanup drops the staging table), finally swaps
the table in (:func:`pg_writes.finish_new_table`) and commits.

So the store changes in that one commit, or not at all: a failure or a crash before it leaves the
store as it was, and the staging table left behind is dropped by the next open that finds the
store's lock free (:func:`pg_schema.drop_leftover_staging`). The streams must hold disjoint ids: two
streams that share one make PostgreSQL refuse the second copy, and the load fails with StreamsOverlap.
"""

from __future__ import annotations

import contextvars
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

import psycopg
from psycopg import Connection, sql

from engine.errors import StreamsOverlap
from engine.records import OnConflict, RecordBatch

from . import pg_schema, pg_writes
from .base import StoreSettings, WriteResult

Stream = Callable[[], Iterable[RecordBatch]]


class _Stopped(Exception):
    """Another stream failed: this one ends its COPY (which rolls its transaction back)."""


def load_streams(conn: Connection, connect: Callable[[], Connection], table: str, settings: StoreSettings,
                 streams: Sequence[Stream], seq: int, on_conflict: OnConflict, *, replace: bool,
                 checked: Callable[[Iterable[RecordBatch]], Iterable[RecordBatch]]) -> WriteResult:
    """Load ``streams`` side by side into a fresh ``{table}__staging``, then swap it in inside ``conn``'s
    transaction (which holds the store's state-row lock). ``connect()`` opens one more connection;
    ``checked`` validates a stream's batches (dimensions, metric) as they pass. When this raises, the
    caller rolls its transaction back and then calls :func:`drop_staging`.

    ``conn`` must run at READ COMMITTED (it reads the rows the streams committed after it began)."""
    assert settings.dimensions is not None
    staging = pg_schema.name(table, "__staging")
    with connect() as admin:
        admin.autocommit = True
        admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(staging)))
        with admin.transaction():
            pg_schema.create_records_table(admin, table, settings.dimensions, target=staging)
            pg_schema.create_secondary_indexes(admin, staging)
    result = _load_all(connect, staging, table, streams, seq, on_conflict, checked)
    pg_writes.finish_new_table(conn, table, staging, seq, replace=replace)
    return result


def _load_all(connect: Callable[[], Connection], staging: str, table: str, streams: Sequence[Stream], seq: int,
              on_conflict: OnConflict, checked: Callable[[Iterable[RecordBatch]], Iterable[RecordBatch]]
              ) -> WriteResult:
    stop = threading.Event()

    def load(stream: Stream) -> WriteResult:
        with connect() as wconn, wconn.transaction():
            wconn.execute("SET LOCAL client_connection_check_interval = '1s'")
            items = pg_writes.encoded(_until(stop, checked(stream())), seq, on_conflict, rows_only=True)
            try:
                return WriteResult(*pg_writes.load_rows(wconn, staging, table, items, on_conflict))
            except (psycopg.errors.UniqueViolation, psycopg.errors.DeadlockDetected) as exc:
                detail = (exc.diag.message_detail or exc.diag.message_primary or "").strip()
                raise StreamsOverlap(
                    f"two of the parallel load's streams hold the same id ({detail}); nothing was written "
                    f"to store {table!r}", hint="streams loaded side by side must hold disjoint ids") from None

    with ThreadPoolExecutor(len(streams), thread_name_prefix="pg-load") as pool:
        # each stream in a copy of the caller's context: its progress reaches the caller's sink
        futures = [pool.submit(contextvars.copy_context().run, load, s) for s in streams]
        try:
            done, _ = wait(futures, return_when=FIRST_EXCEPTION)
            if any(f.exception() is not None for f in done):
                stop.set()
            wait(futures)
        except BaseException:  # interrupted (Ctrl-C, SIGTERM): the streams stop at their next batch
            stop.set()
            raise
    errors = [f.exception() for f in futures if f.exception() is not None]
    if errors:  # the cause, not the streams it stopped; a stream's own finding before an overlap it caused
        raise min(errors, key=lambda e: 2 if isinstance(e, _Stopped) else 1 if isinstance(e, StreamsOverlap) else 0)
    total = WriteResult()
    for f in futures:
        total += f.result()
    return total


def _until(stop: threading.Event, batches: Iterable[RecordBatch]) -> Iterator[RecordBatch]:
    for batch in batches:
        if stop.is_set():
            raise _Stopped("another stream of the load failed")
        yield batch


def drop_staging(connect: Callable[[], Connection], table: str) -> None:
    """Drop ``{table}__staging`` after a failed load, best effort: never raises (the error that ended
    the load is the one to report), and the next open drops whatever is left."""
    try:  # only while the store's lock is free: a load that started since may be filling the table
        with connect() as admin, admin.transaction():
            pg_schema.drop_leftover_staging(admin, table)
    except Exception:  # noqa: BLE001, S110 - best effort by design (see above)
        pass
