"""The HNSW index of a pgvector store, built after the rows are committed and while queries keep working.

A bulk load or replace commits the rows first (queries then answer by an exact scan), and only then
builds the HNSW index with ``CREATE INDEX CONCURRENTLY``: PostgreSQL neither blocks readers nor
writers meanwhile, and the planner uses the index only once it is complete and valid. The build
runs with ``maintenance_work_mem`` sized for the graph to fit in memory (pgvector's fast in-memory
build; capped at a quarter of this machine's memory) and ``max_parallel_maintenance_workers`` set
to the cores of this machine minus one (pgvector >= 0.6 builds in parallel).

:func:`build_state` reads ``pg_stat_progress_create_index`` to say how far a build is:
``{"state": "building" | "ready" | "missing" | "invalid", "percent", "eta_seconds", "phase"}``.
A build that died (killed client, lost server) leaves an INVALID index; :func:`build` drops it
and starts again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from psycopg import Connection, sql

from . import pg_schema
from .base import StoreSettings

GRAPH_OVERHEAD = 200  # bytes per element beyond the vector and its neighbour lists (pgvector's structs)
MIN_MEMORY = 64 << 20


def memory_for(rows: int, settings: StoreSettings) -> int:
    """``maintenance_work_mem`` (bytes) that holds the HNSW graph of ``rows`` rows, within a quarter of RAM."""
    m = int(settings.index_params.get("m", 16))
    need = int(rows * (4 * int(settings.dimensions or 0) + 16 * m + GRAPH_OVERHEAD) * 1.25)
    try:
        ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        ram = 4 << 30
    return max(MIN_MEMORY, min(need, ram // 4))


def workers() -> int:
    """Parallel maintenance workers besides the leader: this machine's cores minus one."""
    return max(0, min(7, (os.cpu_count() or 1) - 1))


def index_name(table: str) -> str:
    return pg_schema.name(table, "_embedding_idx")


def _index_row(conn: Connection, table: str) -> tuple[bool, bool] | None:
    """``(valid, ready)`` of the store's HNSW index, or None when it does not exist."""
    row = conn.execute("SELECT i.indisvalid, i.indisready FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
                       " WHERE c.relname = %s AND c.relnamespace = current_schema()::regnamespace",
                       (index_name(table),)).fetchone()
    return None if row is None else (bool(row[0]), bool(row[1]))


def build_state(conn: Connection, table: str, settings: StoreSettings) -> dict[str, Any]:
    """How far the store's HNSW index is (see the module docstring); flat stores are always ``ready``."""
    if settings.index != "hnsw":
        return {"state": "ready", "percent": 100.0, "eta_seconds": 0.0, "phase": None}
    row = conn.execute(
        "SELECT p.phase, p.blocks_total, p.blocks_done, p.tuples_total, p.tuples_done,"
        " extract(epoch FROM now() - a.query_start) FROM pg_stat_progress_create_index p"
        " LEFT JOIN pg_stat_activity a ON a.pid = p.pid"
        " WHERE p.relid = to_regclass(%s)", (sql.Identifier(table).as_string(conn),)).fetchone()
    if row is not None:
        phase, blocks_total, blocks_done, tuples_total, tuples_done, elapsed = row
        if tuples_total:
            fraction = tuples_done / tuples_total
        elif blocks_total:
            fraction = blocks_done / blocks_total
        else:
            fraction = 0.0
        if phase and not phase.startswith("building index"):
            fraction = max(fraction, 0.99) if "validat" in phase or "wait" in phase else fraction
        fraction = min(max(fraction, 0.0), 1.0)
        eta = float(elapsed) * (1 - fraction) / fraction if fraction > 0 and elapsed is not None else None
        return {"state": "building", "percent": round(100 * fraction, 1),
                "eta_seconds": None if eta is None else round(eta, 1), "phase": phase}
    index = _index_row(conn, table)
    if index is None:
        return {"state": "missing", "percent": 0.0, "eta_seconds": None, "phase": None}
    if not index[0]:
        return {"state": "invalid", "percent": 0.0, "eta_seconds": None, "phase": None}
    return {"state": "ready", "percent": 100.0, "eta_seconds": 0.0, "phase": None}


def build(connect: Callable[[], Connection], table: str, settings: StoreSettings, rows: int) -> bool:
    """Build the store's HNSW index concurrently on a connection of its own; False when there is nothing to do.

    An INVALID leftover of a failed build is dropped first. Another process building the same index at
    the same moment makes this call return once it sees the index (``IF NOT EXISTS``).
    """
    if settings.index != "hnsw" or settings.dimensions is None:
        return False
    conn = connect()  # autocommit: CREATE INDEX CONCURRENTLY cannot run inside a transaction block
    try:
        index = _index_row(conn, table)
        if index is not None and index[0]:
            return False
        if index is not None and not _building(conn, table):
            conn.execute(sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(index_name(table))))
        conn.execute(sql.SQL("SET maintenance_work_mem = {}").format(sql.Literal(f"{memory_for(rows, settings) >> 20}MB")))
        conn.execute(sql.SQL("SET max_parallel_maintenance_workers = {}").format(sql.Literal(workers())))
        pg_schema.create_ann_index(conn, table, settings, concurrently=True)
        return True
    finally:
        conn.close()


def _building(conn: Connection, table: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_stat_progress_create_index WHERE relid = to_regclass(%s)",
                       (sql.Identifier(table).as_string(conn),)).fetchone()
    return row is not None


def wait_ready(read_state: Callable[[], dict[str, Any]], *, timeout: float | None = None, poll: float = 0.5,
               on_progress: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Poll ``read_state`` until the index is ``ready`` (or not being built any more); the last state."""
    deadline = None if timeout is None else time.monotonic() + timeout
    while True:
        state = read_state()
        if on_progress is not None:
            on_progress(state)
        if state["state"] != "building":
            return state
        if deadline is not None and time.monotonic() >= deadline:
            return state
        time.sleep(poll)
