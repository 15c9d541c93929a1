"""Writing records into a pgvector store: COPY BINARY into staging, then one set-based merge; a load
into an empty table streams its rows into a fresh table with one COPY while their ids ascend.

Every function here runs inside the caller's transaction, which already holds the store's state
row lock (:func:`pg_schema.bump_seq`) and so is the only writer of the store.
"""

from __future__ import annotations

from collections.abc import Iterable
from itertools import groupby

from psycopg import Connection, sql

from engine.errors import ConflictError
from engine.records import OnConflict, RecordBatch, dedupe_batch
from engine.streams import prefetch

from . import pg_schema
from .base import StoreSettings, WriteResult
from .pgcopy import HEADER, TRAILER, WRITE_COLUMNS, encode_batch, encode_rows

STAGE = "procos_stage"  # per-connection temporary table the merge reads from
_RECORD_COLUMNS = ("id", "embedding", "metadata", "metadata_json", "version", "source_hash",
                   "created_ts", "updated_ts", "seq")
_CONDITION = {
    OnConflict.NEWER_OR_EQUAL: "EXCLUDED.version >= t.version",
    OnConflict.VERSION: "EXCLUDED.version > t.version",
    OnConflict.OVERWRITE: None,
}


def _cols(names: tuple[str, ...]) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Identifier, names))


def _copy_stmt(target: str) -> sql.Composable:
    return sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(sql.Identifier(target), _cols(WRITE_COLUMNS))


def copy_into(conn: Connection, target: str, payload: bytes) -> None:
    """COPY one encoded payload (:func:`pgcopy.encode_batch`) into ``target``."""
    with conn.cursor() as cur, cur.copy(_copy_stmt(target)) as copy:
        copy.write(payload)


def copy_stream(conn: Connection, target: str, rows: Iterable[bytes]) -> None:
    """COPY many encoded row payloads (:func:`pgcopy.encode_rows`, no header or trailer) into ``target`` as
    one statement: PostgreSQL loads while the next payload is sent, with no per-batch statement or savepoint."""
    with conn.cursor() as cur, cur.copy(_copy_stmt(target)) as copy:
        copy.write(HEADER)
        for payload in rows:
            copy.write(payload)
        copy.write(TRAILER)


def _stage(conn: Connection, payload: bytes) -> None:
    conn.execute(sql.SQL(
        "CREATE TEMP TABLE IF NOT EXISTS {} (version bigint, created_ts timestamptz, updated_ts timestamptz,"
        " seq bigint, embedding vector, id text COLLATE \"C\", metadata_json text, metadata jsonb,"
        " source_hash text) ON COMMIT DELETE ROWS").format(sql.Identifier(STAGE)))
    conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(STAGE)))
    copy_into(conn, STAGE, payload)


def _merge(conn: Connection, target: str, on_conflict: OnConflict, store: str) -> int:
    """Merge the staged rows into ``target`` by ``on_conflict``; the number of rows written."""
    t = sql.Identifier(target)
    stage = sql.Identifier(STAGE)
    if on_conflict is OnConflict.ERROR:
        row = conn.execute(sql.SQL("SELECT s.id FROM {} s JOIN {} t ON t.id = s.id ORDER BY s.id LIMIT 1")
                           .format(stage, t)).fetchone()
        if row is not None:
            raise ConflictError(f"record {row[0]!r} already exists in store {store!r}; nothing was written",
                                hint="write with on_conflict=version, overwrite or keep")
    if on_conflict in (OnConflict.KEEP, OnConflict.ERROR):
        action = sql.SQL("DO NOTHING")
    else:
        sets = sql.SQL(", ").join(sql.SQL("{0} = EXCLUDED.{0}").format(sql.Identifier(c))
                                  for c in _RECORD_COLUMNS[1:])
        action = sql.SQL("DO UPDATE SET ") + sets
        cond = _CONDITION[on_conflict]
        if cond:
            action += sql.SQL(" WHERE " + cond)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("INSERT INTO {} AS t ({}) SELECT {} FROM {} ON CONFLICT (id) ").format(
            t, _cols(_RECORD_COLUMNS), _cols(_RECORD_COLUMNS), stage) + action)
        return max(cur.rowcount, 0)


def encoded(batches: Iterable[RecordBatch], seq: int, on_conflict: OnConflict, *, rows_only: bool = False
            ) -> Iterable[tuple[RecordBatch, RecordBatch, bytes]]:
    """``(batch, deduplicated batch, COPY payload)`` for each batch, prepared one ahead in a background
    thread: reading, validating and encoding the next batch overlap with PostgreSQL loading this one.
    ``rows_only``: the payloads are the rows alone (:func:`pgcopy.encode_rows`), for :func:`copy_stream`."""
    encode = encode_rows if rows_only else encode_batch

    def prepare() -> Iterable[tuple[RecordBatch, RecordBatch, bytes]]:
        for batch in batches:
            deduped = dedupe_batch(batch, on_conflict)
            yield batch, deduped, encode(deduped, seq)

    return prefetch(iter(prepare()), depth=1)


def _ascending_after(ids: list[str], high: str | None) -> bool:
    """Whether ``ids`` strictly ascend, all after ``high``: then none can be in a table holding only ids <= high."""
    if not ids:
        return True
    return (high is None or ids[0] > high) and all(a < b for a, b in zip(ids, ids[1:], strict=False))


def write_batch(conn: Connection, table: str, batch: RecordBatch, seq: int, on_conflict: OnConflict,
                prepared: tuple[RecordBatch, bytes] | None = None) -> WriteResult:
    """Write one validated batch into the live table; re-written ids lose their tombstones.

    ``prepared`` is ``(deduplicated batch, payload)`` from :func:`encoded`."""
    deduped, payload = prepared if prepared is not None else (dedupe_batch(batch, on_conflict), None)
    _stage(conn, payload if payload is not None else encode_batch(deduped, seq))
    written = _merge(conn, table, on_conflict, table)
    tomb = pg_schema.ident(table, "_tombstones")
    conn.execute(sql.SQL("DELETE FROM {} d USING {} s WHERE d.id = s.id").format(tomb, sql.Identifier(STAGE)))
    return WriteResult(written, len(batch) - written)


def merge_batches(conn: Connection, table: str, batches: Iterable[RecordBatch], seq: int,
                  on_conflict: OnConflict) -> WriteResult:
    """Write ``batches`` into the live table one by one (:func:`write_batch`), the next encoded meanwhile."""
    result = WriteResult()
    for batch, deduped, payload in encoded(batches, seq, on_conflict):
        result += write_batch(conn, table, batch, seq, on_conflict, (deduped, payload))
    return result


def load_new_table(conn: Connection, table: str, settings: StoreSettings, batches: Iterable[RecordBatch],
                   seq: int, on_conflict: OnConflict, *, replace: bool) -> WriteResult:
    """Build the full table in ``{table}__staging`` (its HNSW index comes later), then swap it in.

    With ``replace`` every stored id missing from ``batches`` gets a tombstone; otherwise the live
    table must be empty (bulk load) and the loaded rows simply become the table. Runs in the
    caller's transaction: a crash anywhere leaves the old table untouched.
    """
    assert settings.dimensions is not None
    staging = pg_schema.name(table, "__staging")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(staging)))
    pg_schema.create_records_table(conn, table, settings.dimensions, target=staging)
    # the secondary indexes first, kept up by the COPY: measured at 100,000 x 768 on 2 cores, building
    # them after the load cost the server 0.6 CPU-s, keeping them (GIN's pending list, one seq value) 0.2
    pg_schema.create_secondary_indexes(conn, staging)
    written, skipped = load_rows(conn, staging, table, encoded(batches, seq, on_conflict, rows_only=True),
                                  on_conflict)
    finish_new_table(conn, table, staging, seq, replace=replace)
    return WriteResult(written, skipped)


def finish_new_table(conn: Connection, table: str, staging: str, seq: int, *, replace: bool) -> None:
    """Make the loaded ``staging`` the store's table: with ``replace``, tombstones for the ids it lacks;
    the tombstones of the ids it holds go; then the swap and the planner statistics."""
    # no HNSW index here: the rows are committed first (queries answer exactly at once), then the store
    # builds it concurrently (pg_index_build), so a restored store is never unusable during the build
    live, new = sql.Identifier(table), sql.Identifier(staging)
    tomb = pg_schema.ident(table, "_tombstones")
    if replace:
        conn.execute(sql.SQL(
            "INSERT INTO {tomb} (id, version, seq, deleted_ts) SELECT o.id, o.version, %s, now() FROM {live} o"
            " WHERE NOT EXISTS (SELECT 1 FROM {new} n WHERE n.id = o.id)"
            " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, seq = EXCLUDED.seq,"
            " deleted_ts = EXCLUDED.deleted_ts").format(tomb=tomb, live=live, new=new), (seq,))
    conn.execute(sql.SQL("DELETE FROM {} d USING {} n WHERE d.id = n.id").format(tomb, new))
    pg_schema.swap_in(conn, table, staging)
    analyze(conn, table)


def load_rows(conn: Connection, staging: str, table: str,
               prepared: Iterable[tuple[RecordBatch, RecordBatch, bytes]], on_conflict: OnConflict) -> tuple[int, int]:
    """Load ``prepared`` (``encoded(..., rows_only=True)``) into the new table ``staging``; ``(written, skipped)``.

    While ids keep ascending (a bundle's always do), no batch can meet an id already loaded, so the
    rows stream into one COPY statement; a batch that could repeat an id ends that COPY and is merged
    by the conflict rule (staged, then ``INSERT ... ON CONFLICT``), and the next ascending run starts a new COPY.
    """
    tally = {"written": 0, "skipped": 0, "high": None}

    def fast(item: tuple[RecordBatch, RecordBatch, bytes]) -> bool:
        deduped = item[1]
        ok = _ascending_after(deduped.ids, tally["high"])
        if deduped.ids:
            top = deduped.ids[-1] if ok else max(deduped.ids)
            tally["high"] = top if tally["high"] is None else max(tally["high"], top)
        return ok

    def run(items: Iterable[tuple[RecordBatch, RecordBatch, bytes]]) -> Iterable[bytes]:
        for batch, deduped, payload in items:
            tally["written"] += len(deduped)
            tally["skipped"] += len(batch) - len(deduped)
            yield payload

    for ascending, items in groupby(prepared, key=fast):
        if ascending:
            copy_stream(conn, staging, run(items))
            continue
        for batch, _deduped, payload in items:
            _stage(conn, HEADER + payload + TRAILER)
            n = _merge(conn, staging, on_conflict, table)
            tally["written"] += n
            tally["skipped"] += len(batch) - n
    return tally["written"], tally["skipped"]


# Planner statistics after a load: the columns the store's queries filter or order on (id ranges, seq
# ranges, metadata filters); not the vectors (an ORDER BY distance plan does not use their statistics,
# and they were most of ANALYZE's time) nor the columns only ever read back.
_ANALYZED = ("id", "seq", "metadata")


def analyze(conn: Connection, table: str) -> None:
    conn.execute(sql.SQL("ANALYZE {} ({})").format(sql.Identifier(table), _cols(_ANALYZED)))


def delete_ids(conn: Connection, table: str, ids: list[str], seq: int) -> int:
    """Move the stored records among ``ids`` to the tombstones (stamped ``seq``); how many existed."""
    with conn.cursor() as cur:
        cur.execute(sql.SQL(
            "WITH d AS (DELETE FROM {t} WHERE id = ANY(%s) RETURNING id, version)"
            " INSERT INTO {tomb} (id, version, seq, deleted_ts) SELECT id, version, %s, now() FROM d"
            " ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version, seq = EXCLUDED.seq,"
            " deleted_ts = EXCLUDED.deleted_ts").format(
                t=sql.Identifier(table), tomb=pg_schema.ident(table, "_tombstones")), (ids, seq))
        return max(cur.rowcount, 0)
