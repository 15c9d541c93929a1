"""Nearest-neighbour SQL for pgvector stores.

The distance operators (``<=>`` cosine, ``<->`` l2, ``<#>`` negative inner product) are the
scores. Without filters an HNSW store asks the index for ``ef_search`` candidates and orders them
by (distance, id); with filters, with ``exact``, for ``index=flat``, or for ``k`` beyond what HNSW
can return, the search is exact: ``ORDER BY distance, id`` is not an index ordering, so PostgreSQL scans the
matching rows (pgvector 0.6 has no iterative index scans that would keep filtered HNSW complete).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg import sql

from engine.errors import InvalidRecord

from .base import MAX_EF_SEARCH as HNSW_MAX_EF_SEARCH
from .base import StoreSettings
from .pg_schema import OPERATOR


def query_vector_text(vector: Sequence[float] | np.ndarray, dims: int, metric: str) -> str:
    """The query as pgvector text ``[x,y,...]``, exact for float32 (shortest round-trip repr)."""
    try:
        q = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord("<query>", f"query vector is not numeric ({exc})") from exc
    if q.ndim != 1 or q.shape[0] != dims:
        raise InvalidRecord("<query>", f"query vector has shape {q.shape}, the store has {dims} dimensions",
                            hint="embed the query with the model the store was built with")
    if not np.isfinite(q).all():
        raise InvalidRecord("<query>", "query vector contains NaN or Inf")
    if metric == "cosine" and not q.any():
        raise InvalidRecord("<query>", "query vector is all zeros, which has no cosine distance")
    return "[" + ",".join(map(repr, q.tolist())) + "]"


def containment_hint(clauses: list[tuple[str, tuple[Any, ...]]]) -> tuple[str, list[Any]]:
    """A condition implied by the filter clauses that the GIN (jsonb_path_ops) index can answer.

    ``metadata @> {"f": v}`` holds whenever ``metadata -> 'f'`` equals ``v``, so ANDing it with the
    exact clauses changes no result; it lets PostgreSQL read only candidate rows via the index.
    """
    parts, params = [], []
    for field, values in clauses:
        parts.append("(" + " OR ".join(["metadata @> %s::jsonb"] * len(values)) + ")")
        params.extend(json.dumps({field: v}) for v in values)
    return " AND ".join(parts), params


def search_sql(table: str, settings: StoreSettings, k: int, qtext: str, where: str,
               where_params: list[Any], *, exact: bool = False) -> tuple[sql.Composed, list[Any], int | None]:
    """(statement, parameters, ef_search to SET LOCAL or None) for a k-nearest query (``exact``: a full scan)."""
    dist = sql.SQL("embedding {} %s::vector").format(sql.SQL(OPERATOR[settings.metric]))
    t = sql.Identifier(table)
    ef = max(int(settings.index_params.get("ef_search", 40)), k)
    approximate = not exact and settings.index == "hnsw" and where == "TRUE" and ef <= HNSW_MAX_EF_SEARCH
    if not approximate:
        stmt = sql.SQL("SELECT id, {d} AS distance, metadata_json FROM {t} WHERE {w}"
                       " ORDER BY distance, id LIMIT {k}").format(d=dist, t=t, w=sql.SQL(where), k=sql.Literal(k))
        return stmt, [qtext, *where_params], None
    stmt = sql.SQL("SELECT id, distance, metadata_json FROM (SELECT id, {d} AS distance, metadata_json FROM {t}"
                   " ORDER BY {d} LIMIT {ef}) c ORDER BY distance, id LIMIT {k}").format(
                       d=dist, t=t, ef=sql.Literal(ef), k=sql.Literal(k))
    return stmt, [qtext, qtext], ef
