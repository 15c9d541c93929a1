"""Reading a pgvector store: nearest neighbours, fetch by id, ordered COPY streams, changes.

Each function runs inside the caller's transaction on the caller's connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from dataclasses import replace

import numpy as np
from psycopg import Connection, sql

from engine.records import EmbeddingRecord, RecordBatch

from . import pg_schema
from .base import Changes, Hit, StoreSettings
from .filters import Clause, postgres_where
from .pg_query import containment_hint, query_vector_text, search_sql
from .pgcopy import READ_COLUMNS, decode_stream


def nearest(conn: Connection, table: str, settings: StoreSettings, vector: Sequence[float] | np.ndarray,
            k: int, clauses: list[Clause], exact: bool = False) -> list[Hit]:
    """The ``k`` closest records (exact when filtered or ``exact``), ordered by (distance, id).

    ``exact`` makes the caller's transaction read-only and turns index scans off, so PostgreSQL
    computes the distance of every (matching) row instead of asking the HNSW graph.
    """
    assert settings.dimensions is not None
    if exact:
        conn.execute("SET LOCAL transaction_read_only = on")
        conn.execute("SET LOCAL enable_indexscan = off")
    qtext = query_vector_text(vector, settings.dimensions, settings.metric)
    where, where_params = postgres_where(clauses)
    if clauses:
        hint, hint_params = containment_hint(clauses)
        where, where_params = f"{hint} AND {where}", hint_params + where_params
    stmt, params, ef = search_sql(table, settings, k, qtext, where, where_params, exact=exact)
    if ef:
        conn.execute(sql.SQL("SET LOCAL hnsw.ef_search = {}").format(sql.Literal(ef)))
    rows = conn.execute(stmt, params).fetchall()
    if ef and len(rows) < k:
        # The graph's nearest entries were dead rows (a rolled-back write, before VACUUM) or unreachable:
        # the contract is k hits whenever k records exist, so answer exactly.
        stmt, params, _ = search_sql(table, replace(settings, index="flat"), k, qtext, where, where_params)
        rows = conn.execute(stmt, params).fetchall()
    return [Hit(rid, float(dist), json.loads(meta)) for rid, dist, meta in rows]


def fetch(conn: Connection, table: str, ids: Sequence[str]) -> list[EmbeddingRecord]:
    """The stored records among ``ids`` in the order of ``ids``."""
    rows = conn.execute(sql.SQL(
        "SELECT id, vector_send(embedding), metadata_json, version, source_hash, created_ts, updated_ts"
        " FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)), (sorted(set(ids)),)).fetchall()
    found = {}
    for rid, vec, meta, version, src, created, updated in rows:
        found[rid] = EmbeddingRecord(
            id=rid, vector=np.frombuffer(vec, dtype=">f4", offset=4).astype(np.float32),
            metadata=json.loads(meta), version=int(version), source_hash=src,
            created_ts=created, updated_ts=updated)
    return [found[rid] for rid in ids if rid in found]


def copy_out(conn: Connection, table: str, dims: int, where: sql.Composable,
             batch_size: int) -> Iterator[RecordBatch]:
    """Rows matching ``where`` in ascending id order, as batches decoded from one COPY BINARY stream."""
    stmt = sql.SQL("COPY (SELECT {} FROM {} WHERE {} ORDER BY id) TO STDOUT (FORMAT BINARY)").format(
        sql.SQL(", ").join(map(sql.Identifier, READ_COLUMNS)), sql.Identifier(table), where)
    with conn.cursor() as cur, cur.copy(stmt) as copy:
        yield from decode_stream(copy, dims, max(1, int(batch_size)))


def changes(conn: Connection, table: str, dims: int | None, seq: int, batch_size: int) -> Changes:
    """Upserts and tombstones after ``seq`` (the caller's transaction should be REPEATABLE READ)."""
    until = int(pg_schema.state_value(conn, table, "seq"))
    upserts: list[RecordBatch] = []
    deletes: list[tuple[str, int, int]] = []
    if dims is not None:
        upserts = list(copy_out(conn, table, dims, sql.SQL("seq > {}").format(sql.Literal(int(seq))), batch_size))
        rows = conn.execute(sql.SQL("SELECT id, version, seq FROM {} WHERE seq > %s ORDER BY id").format(
            pg_schema.ident(table, "_tombstones")), (int(seq),)).fetchall()
        deletes = [(rid, int(version), int(s)) for rid, version, s in rows]
    return Changes(since=int(seq), until=until, upserts=upserts, deletes=deletes)


def count(conn: Connection, table: str) -> int:
    return int(conn.execute(sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(table))).fetchone()[0])



