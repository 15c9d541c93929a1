"""The SQL objects of a pgvector store: names, DDL, and the shared state row.

Per store (table ``T``): the records table ``T``, its tombstones ``T_tombstones``, and one row
in ``procos_store_state`` holding the settings, the change sequence and the freeze flag with its
holder and lease (``paused``, ``held_by``, ``lease_expires``; see :mod:`.freeze`), so every process
sees them. Artifacts live in ``knowledge_artifacts`` keyed by store name.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import psycopg
from psycopg import Connection, sql
from psycopg.types.json import Jsonb

from engine.errors import InvalidURI, StoreCorrupt, StoreError

from . import freeze
from .base import DEFAULT_HNSW, StoreSettings
from .freeze import Freeze

STATE_TABLE = "procos_store_state"
ARTIFACT_TABLE = "knowledge_artifacts"
SETUP_LOCK = 0x70726F636F73  # pg_advisory_xact_lock key serializing DDL of every store
OPCLASS = {"cosine": "vector_cosine_ops", "l2": "vector_l2_ops", "inner_product": "vector_ip_ops"}
OPERATOR = {"cosine": "<=>", "l2": "<->", "inner_product": "<#>"}
HNSW_MAX_DIMS = 2000  # pgvector 0.6 limit for indexed vector columns
PLAIN_STORAGE_MAX_DIMS = 1500  # keep vectors inline (no TOAST) while a row fits a page
# Columns of the state row added after its first release: (name, type), added by setup_shared.
LATER_COLUMNS = (("store_id", "text"), ("held_by", "jsonb"), ("lease_expires", "double precision"))


def name(table: str, suffix: str = "") -> str:
    """``table + suffix`` as an identifier of at most 63 bytes (hashed when longer, never truncated)."""
    full = table + suffix
    if len(full) <= 63:
        return full
    digest = hashlib.sha1(table.encode()).hexdigest()[:8]
    return f"{table[:63 - len(suffix) - 9]}_{digest}{suffix}"


def ident(table: str, suffix: str = "") -> sql.Identifier:
    return sql.Identifier(name(table, suffix))


def check_table_name(table: str, where: str) -> None:
    """Refuse store names that would collide with our own tables."""
    if table in (STATE_TABLE, ARTIFACT_TABLE) or table.endswith(("_tombstones", "__staging")):
        raise InvalidURI(f"table name {table!r} in {where} is reserved",
                         hint="choose another table=NAME (not ending in _tombstones or __staging)")


def setup_shared(conn: Connection, where: str) -> None:
    """Create the extension and the shared tables if missing (inside the caller's transaction)."""
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (SETUP_LOCK,))
    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = 'vector'").fetchone()
    try:
        if not installed:  # a role that may not create extensions works once a superuser installed it
            with conn.transaction():
                conn.execute("CREATE EXTENSION IF NOT EXISTS vector")
    except psycopg.Error as exc:
        raise StoreError(f"the pgvector extension is not available in {where}: {' '.join(str(exc).split())}",
                         hint="install pgvector on the server and run CREATE EXTENSION vector as a superuser"
                         ) from exc
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (table_name text PRIMARY KEY, dimensions int, metric text NOT NULL,"
        " index_type text NOT NULL, index_params jsonb NOT NULL, seq bigint NOT NULL DEFAULT 0,"
        " paused bool NOT NULL DEFAULT false, created_ts timestamptz NOT NULL DEFAULT now())"
    ).format(sql.Identifier(STATE_TABLE)))
    have = {row[0] for row in conn.execute(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() "
        "AND table_name = %s", (STATE_TABLE,))}
    for column, kind in LATER_COLUMNS:  # stores created before these existed get them on open
        if column not in have:
            try:
                with conn.transaction():
                    conn.execute(sql.SQL("ALTER TABLE {} ADD COLUMN IF NOT EXISTS {} {}").format(
                        sql.Identifier(STATE_TABLE), sql.Identifier(column), sql.SQL(kind)))
            except psycopg.errors.InsufficientPrivilege as exc:
                raise StoreError(f"{STATE_TABLE} in {where} lacks the column {column} of this version, and "
                                 "this role may not add it", hint=f"have the table's owner open a store once "
                                 f"with this version (or run ALTER TABLE {STATE_TABLE} ADD COLUMN {column} "
                                 f"{kind})") from exc
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {} (store text NOT NULL, path text COLLATE \"C\" NOT NULL,"
        " content bytea NOT NULL, sha256 text NOT NULL, updated_ts timestamptz NOT NULL DEFAULT now(),"
        " PRIMARY KEY (store, path))"
    ).format(sql.Identifier(ARTIFACT_TABLE)))


def prepare_store(conn: Connection, table: str, wanted: dict[str, Any], where: str) -> StoreSettings:
    """Open-time setup: shared objects, the state row, the tables once dimensions are known.

    Drops a leftover ``{table}__staging`` (:func:`drop_leftover_staging`).
    """
    from . import resolve_settings

    setup_shared(conn, where)
    state = read_state(conn, table)
    settings = resolve_settings(state and state["settings"], wanted, where=where)
    if state is None:
        insert_state(conn, table, settings)
    elif settings.dimensions is not None and state["settings"].dimensions is None:
        set_dimensions(conn, table, settings.dimensions)
    conn.execute(sql.SQL("UPDATE {} SET store_id = gen_random_uuid()::text WHERE table_name = %s"
                         " AND store_id IS NULL").format(sql.Identifier(STATE_TABLE)), (table,))
    if settings.dimensions is not None and not table_exists(conn, table):
        create_store_tables(conn, table, settings)
    drop_leftover_staging(conn, table)
    return settings


def drop_leftover_staging(conn: Connection, table: str) -> None:
    """Drop ``{table}__staging`` unless a load is using it.

    A one-connection load makes it inside its own transaction (invisible here); a parallel load
    (:mod:`.pg_parallel`) commits it first, and holds the store's state-row lock from before then
    until it swaps the table in. So a staging table seen here while that lock is free is a leftover
    (of a crash or a failed load); while it is held, a load may be filling it and it is left alone.
    """
    staging = name(table, "__staging")
    if not table_exists(conn, staging):
        return
    free = conn.execute(sql.SQL("SELECT 1 FROM {} WHERE table_name = %s FOR UPDATE SKIP LOCKED").format(
        sql.Identifier(STATE_TABLE)), (table,)).fetchone()
    if free is None:
        return
    # the backends of a client that just died may still hold the table for a moment: wait for them a
    # little, not forever (every open would stall behind them); the next open tries again
    previous = conn.execute("SELECT current_setting('lock_timeout')").fetchone()[0]
    conn.execute("SELECT set_config('lock_timeout', '2s', true)")
    try:
        with conn.transaction():
            conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(staging)))
    except psycopg.errors.LockNotAvailable:
        pass
    finally:
        conn.execute("SELECT set_config('lock_timeout', %s, true)", (previous,))


def read_state(conn: Connection, table: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The state row of ``table`` as a dict, or None."""
    query = sql.SQL("SELECT dimensions, metric, index_type, index_params, seq, paused FROM {} "
                    "WHERE table_name = %s" + (" FOR UPDATE" if lock else "")).format(sql.Identifier(STATE_TABLE))
    row = conn.execute(query, (table,)).fetchone()
    if row is None:
        return None
    dims, metric, index, params, seq, paused = row
    return {"settings": StoreSettings(dims, metric, index, dict(params)), "seq": seq, "paused": paused}


def insert_state(conn: Connection, table: str, settings: StoreSettings) -> None:
    conn.execute(sql.SQL(
        "INSERT INTO {} (table_name, dimensions, metric, index_type, index_params) VALUES (%s, %s, %s, %s, %s)"
        " ON CONFLICT (table_name) DO NOTHING").format(sql.Identifier(STATE_TABLE)),
        (table, settings.dimensions, settings.metric, settings.index, json.dumps(dict(settings.index_params))))


def state_value(conn: Connection, table: str, column: str) -> Any:
    """One column (``seq``, ``paused``, ...) of the store's state row."""
    row = conn.execute(sql.SQL("SELECT {} FROM {} WHERE table_name = %s").format(
        sql.Identifier(column), sql.Identifier(STATE_TABLE)), (table,)).fetchone()
    if row is None:
        raise StoreCorrupt(f"store {table!r} has no row in {STATE_TABLE}", hint="reopen the store")
    return row[0]


def read_freeze(conn: Connection, table: str, *, lock: bool = False) -> Freeze:
    """The store's freeze flag; ``lock`` holds the state row until the transaction ends."""
    row = conn.execute(sql.SQL("SELECT paused, held_by, lease_expires FROM {} WHERE table_name = %s"
                               + (" FOR UPDATE" if lock else "")).format(sql.Identifier(STATE_TABLE)),
                       (table,)).fetchone()
    if row is None:
        raise StoreCorrupt(f"store {table!r} has no row in {STATE_TABLE}", hint="reopen the store")
    return freeze.read(bool(row[0]), _holder(row[1]), row[2])


def set_freeze(conn: Connection, table: str, paused: bool, held_by: dict[str, Any] | None = None,
               lease_expires: float | None = None) -> None:
    conn.execute(sql.SQL("UPDATE {} SET paused = %s, held_by = %s, lease_expires = %s WHERE table_name = %s")
                 .format(sql.Identifier(STATE_TABLE)),
                 (paused, Jsonb(held_by) if held_by is not None else None, lease_expires, table))


def _holder(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return value if isinstance(value, dict) else {"damaged": str(value)[:200]}


def set_index_param(conn: Connection, table: str, key: str, value: int) -> None:
    """Change one stored index parameter (``ef_search``) of the store's state row."""
    conn.execute(sql.SQL("UPDATE {} SET index_params = index_params || jsonb_build_object(%s::text, %s::int)"
                         " WHERE table_name = %s").format(sql.Identifier(STATE_TABLE)), (key, value, table))


def set_dimensions(conn: Connection, table: str, dims: int) -> None:
    conn.execute(sql.SQL("UPDATE {} SET dimensions = %s WHERE table_name = %s").format(
        sql.Identifier(STATE_TABLE)), (dims, table))


def bump_seq(conn: Connection, table: str) -> tuple[int, Freeze]:
    """Lock the state row for this transaction and take the next change sequence: (seq, freeze flag)."""
    row = conn.execute(sql.SQL("UPDATE {} SET seq = seq + 1 WHERE table_name = %s "
                               "RETURNING seq, paused, held_by, lease_expires")
                       .format(sql.Identifier(STATE_TABLE)), (table,)).fetchone()
    if row is None:
        raise StoreCorrupt(f"store {table!r} has no row in {STATE_TABLE}",
                           hint="reopen the store, which recreates its state")
    return int(row[0]), freeze.read(bool(row[1]), _holder(row[2]), row[3])


def create_records_table(conn: Connection, table: str, dims: int, *, target: str | None = None) -> None:
    """Create the records table ``target`` (default ``table``) without its secondary indexes."""
    target = target or table
    storage = "PLAIN" if dims <= PLAIN_STORAGE_MAX_DIMS else "MAIN"
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {t} (id text COLLATE \"C\" NOT NULL, embedding vector({d}) NOT NULL,"
        " metadata jsonb NOT NULL, metadata_json text NOT NULL, version bigint NOT NULL,"
        " source_hash text NOT NULL, created_ts timestamptz NOT NULL, updated_ts timestamptz NOT NULL,"
        " seq bigint NOT NULL, CONSTRAINT {pk} PRIMARY KEY (id))"
    ).format(t=sql.Identifier(target), d=sql.Literal(dims), pk=ident(target, "_pkey")))
    conn.execute(sql.SQL("ALTER TABLE {} ALTER COLUMN embedding SET STORAGE {}").format(
        sql.Identifier(target), sql.SQL(storage)))


def create_secondary_indexes(conn: Connection, target: str) -> None:
    conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (seq)").format(
        ident(target, "_seq_idx"), sql.Identifier(target)))
    conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin (metadata jsonb_path_ops)").format(
        ident(target, "_metadata_idx"), sql.Identifier(target)))


def create_ann_index(conn: Connection, target: str, settings: StoreSettings, *, concurrently: bool = False) -> None:
    """The HNSW index of ``target`` (nothing for ``index=flat``); ``concurrently`` needs an autocommit connection."""
    if settings.index != "hnsw":
        return
    if settings.dimensions is not None and settings.dimensions > HNSW_MAX_DIMS:
        raise StoreError(f"an HNSW index supports at most {HNSW_MAX_DIMS} dimensions, not {settings.dimensions}",
                         hint="open the store with index=flat")
    params = settings.index_params
    conn.execute(sql.SQL(
        "CREATE INDEX {} IF NOT EXISTS {} ON {} USING hnsw (embedding {}) WITH (m = {}, ef_construction = {})"
    ).format(sql.SQL("CONCURRENTLY" if concurrently else ""), ident(target, "_embedding_idx"), sql.Identifier(target),
             sql.SQL(OPCLASS[settings.metric]),
             sql.Literal(int(params.get("m", 16))), sql.Literal(int(params.get("ef_construction", DEFAULT_HNSW["ef_construction"])))))


def drop_ann_index(conn: Connection, target: str) -> None:
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(ident(target, "_embedding_idx")))


def create_tombstones(conn: Connection, table: str) -> None:
    tomb = name(table, "_tombstones")
    conn.execute(sql.SQL(
        "CREATE TABLE IF NOT EXISTS {t} (id text COLLATE \"C\" NOT NULL, version bigint NOT NULL,"
        " seq bigint NOT NULL, deleted_ts timestamptz NOT NULL, CONSTRAINT {pk} PRIMARY KEY (id))"
    ).format(t=sql.Identifier(tomb), pk=ident(tomb, "_pkey")))
    conn.execute(sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (seq)").format(
        ident(tomb, "_seq_idx"), sql.Identifier(tomb)))


def create_store_tables(conn: Connection, table: str, settings: StoreSettings) -> None:
    """Records table with all its indexes, and the tombstones table (idempotent)."""
    assert settings.dimensions is not None
    create_records_table(conn, table, settings.dimensions)
    create_secondary_indexes(conn, table)
    create_ann_index(conn, table, settings)
    create_tombstones(conn, table)


def table_exists(conn: Connection, target: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(target).as_string(conn),)).fetchone()
    return row is not None and row[0] is not None


def swap_in(conn: Connection, table: str, staging: str) -> None:
    """Drop ``table`` and rename ``staging`` (and its indexes) to the canonical names."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))
    conn.execute(sql.SQL("ALTER TABLE {} RENAME TO {}").format(sql.Identifier(staging), sql.Identifier(table)))
    for suffix in ("_pkey", "_seq_idx", "_metadata_idx", "_embedding_idx"):
        conn.execute(sql.SQL("ALTER INDEX IF EXISTS {} RENAME TO {}").format(
            ident(staging, suffix), ident(table, suffix)))


def store_exists(conn: Connection, table: str) -> bool:
    """Whether ``table`` is a store registered in procos_store_state (without creating anything)."""
    if not table_exists(conn, "procos_store_state"):
        conn.rollback()
        return False
    row = conn.execute("SELECT 1 FROM procos_store_state WHERE table_name = %s", (table,)).fetchone()
    conn.rollback()
    return row is not None


def drop_store(conn: Connection, table: str) -> None:
    """Remove every object of the store ``table``: its tables, its state row, its artifacts."""
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}, {}, {}").format(
        sql.Identifier(table), ident(table, "_tombstones"), ident(table, "__staging")))
    conn.execute(sql.SQL("DELETE FROM {} WHERE table_name = %s").format(sql.Identifier(STATE_TABLE)), (table,))
    conn.execute(sql.SQL("DELETE FROM {} WHERE store = %s").format(sql.Identifier(ARTIFACT_TABLE)), (table,))
