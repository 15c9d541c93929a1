"""Metadata filters: one meaning, rendered for each backend.

A filter is a JSON object of top-level metadata fields, all of which must match (AND)::

    {"lang": "en"}                       equality
    {"lang": {"$in": ["en", "de"]}}      one of several values
    {"lang": "en", "tier": {"$in": [1, 2]}}

Values are JSON scalars (string, number, true/false, null). Matching is JSON equality: numbers
compare by value (1 equals 1.0), a boolean never equals a number, a missing field never matches.
Both SQLite (FAISS stores) and PostgreSQL ``jsonb`` (pgvector stores) are given SQL with exactly
these semantics, and :func:`matches` is the reference implementation the tests compare against.
"""

from __future__ import annotations

import json
import math
from typing import Any

from engine.errors import InvalidFilter

Scalar = str | int | float | bool | None
Clause = tuple[str, tuple[Scalar, ...]]


def normalize(filters: dict[str, Any] | None) -> list[Clause]:
    """Validate ``filters`` and return ``[(field, allowed_values), ...]`` sorted by field."""
    if filters is None:
        return []
    if not isinstance(filters, dict):
        raise InvalidFilter(f"a filter must be a JSON object, got {type(filters).__name__}",
                            hint='write it like {"lang": "en"} or {"lang": {"$in": ["en", "de"]}}')
    clauses: list[Clause] = []
    for name, cond in sorted(filters.items()):
        if not isinstance(name, str) or not name or '"' in name or "\\" in name:
            raise InvalidFilter(f"invalid metadata field name {name!r} in filter")
        if isinstance(cond, dict):
            if set(cond) != {"$in"}:
                raise InvalidFilter(f"unsupported operator(s) {sorted(cond)} for field {name!r}",
                                    hint='only equality and {"$in": [...]} are supported')
            values = cond["$in"]
            if not isinstance(values, list | tuple) or not values:
                raise InvalidFilter(f'"$in" for field {name!r} needs a non-empty list of values')
        else:
            values = [cond]
        for v in values:
            _check_scalar(name, v)
        clauses.append((name, tuple(values)))
    return clauses


def _check_scalar(name: str, value: Any) -> None:
    if value is None or isinstance(value, str | bool | int):
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    raise InvalidFilter(f"filter value {value!r} for field {name!r} is not a JSON scalar",
                        hint="compare against strings, numbers, true/false or null")


def _json_equal(a: Any, b: Scalar) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if a is None or b is None:
        return a is None and b is None
    return isinstance(a, str) and isinstance(b, str) and a == b


def matches(metadata: dict[str, Any], clauses: list[Clause]) -> bool:
    """Whether a record's metadata satisfies every clause (the reference semantics)."""
    for name, values in clauses:
        if name not in metadata:
            return False
        if not any(_json_equal(metadata[name], v) for v in values):
            return False
    return True


def _sqlite_type(value: Scalar) -> str:
    if value is None:
        return "'null'"
    if isinstance(value, bool):
        return "'true'" if value else "'false'"
    if isinstance(value, str):
        return "'text'"
    return "'integer','real'"


def sqlite_where(clauses: list[Clause], column: str = "metadata") -> tuple[str, list[Any]]:
    """A SQLite boolean expression (JSON1 functions) and its parameters for ``clauses``."""
    parts: list[str] = []
    params: list[Any] = []
    for name, values in clauses:
        path = f'$."{name}"'
        alts = []
        for v in values:
            kind = _sqlite_type(v)
            if v is None or isinstance(v, bool):
                alts.append(f"json_type({column}, ?) IN ({kind})")
                params.append(path)
            else:
                alts.append(f"(json_type({column}, ?) IN ({kind}) AND json_extract({column}, ?) = ?)")
                params.extend([path, path, v])
        parts.append("(" + " OR ".join(alts) + ")")
    return (" AND ".join(parts) or "1"), params


def postgres_where(clauses: list[Clause], column: str = "metadata") -> tuple[str, list[Any]]:
    """A PostgreSQL boolean expression over a ``jsonb`` column and its parameters for ``clauses``."""
    parts: list[str] = []
    params: list[Any] = []
    for name, values in clauses:
        parts.append(f"({column} -> %s) = ANY(%s::jsonb[])")
        params.extend([name, [json.dumps(v) for v in values]])
    return (" AND ".join(parts) or "TRUE"), params
