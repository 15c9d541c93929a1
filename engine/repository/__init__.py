"""Vector stores: the :class:`VectorRepository` protocol, its backends, and :func:`open_repository`."""

from __future__ import annotations

import importlib
from typing import Any

from engine.errors import InvalidURI, SettingsMismatch

from .base import (
    DEFAULT_HNSW,
    MAX_EF_SEARCH,
    ArtifactInfo,
    ArtifactStore,
    Changes,
    Hit,
    StoreSettings,
    VectorRepository,
    WriteResult,
)
from .uri import StoreURI, parse_uri, redact

__all__ = [
    "MAX_EF_SEARCH", "ArtifactInfo", "ArtifactStore", "Changes", "Hit", "StoreSettings", "StoreURI", "VectorRepository",
    "WriteResult", "open_repository", "parse_uri", "redact", "requested_settings", "resolve_settings",
]

# One entry per URI scheme; the module is imported only when a store of that kind is opened.
BACKENDS: dict[str, str] = {
    "faiss": "engine.repository.faiss:FaissRepository",
    "postgresql": "engine.repository.pgvector:PgVectorRepository",
    "postgresql+embedded": "engine.repository.pgvector:PgVectorRepository",
}


def open_repository(uri: str | None = None, *, dimensions: int | None = None, metric: str | None = None,
                    index: str | None = None, index_params: dict[str, int] | None = None,
                    create: bool = True) -> VectorRepository:
    """Open (creating on first use) the store named by ``uri``, or by ``$VECTOR_ENDPOINT`` when None.

    Settings given here or in the URI apply to a new store; for an existing store every setting not
    given is read from the store, and one given that differs raises :class:`SettingsMismatch`.
    With ``create=False`` a store that does not exist yet raises :class:`StoreNotFound` instead of
    being created (read-only operations use this, so a mistyped path is an error, not a new store).
    """
    parsed = parse_uri(uri)
    target = BACKENDS.get(parsed.scheme)
    if target is None:  # pragma: no cover - parse_uri already refuses unknown schemes
        raise InvalidURI(f"no backend for scheme {parsed.scheme!r}")
    module_name, _, cls_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name)
    wanted = requested_settings(parsed, dimensions=dimensions, metric=metric, index=index,
                                index_params=index_params)
    return cls.open(parsed, wanted, create=create)


def requested_settings(parsed: StoreURI, **given: Any) -> dict[str, Any]:
    """Merge settings from the URI and from keywords; the two must not disagree."""
    from_uri: dict[str, Any] = {}
    opts = parsed.options
    if "dimensions" in opts:
        from_uri["dimensions"] = int(opts["dimensions"])
    for key in ("metric", "index"):
        if key in opts:
            from_uri[key] = opts[key]
    params = {k: int(opts[k]) for k in ("m", "ef_construction", "ef_search") if k in opts}
    if params:
        from_uri["index_params"] = params
    merged = dict(from_uri)
    for key, value in given.items():
        if value is None:
            continue
        if key == "index_params":
            clash = {k: v for k, v in value.items() if k in params and params[k] != v}
            if clash:
                raise SettingsMismatch(f"index parameters {clash} differ from the URI's {params}")
            merged["index_params"] = {**params, **value}
        elif key in from_uri and from_uri[key] != value:
            raise SettingsMismatch(f"{key}={value!r} differs from {key}={from_uri[key]!r} in the URI",
                                   hint="give the setting once, in the URI or as an argument")
        else:
            merged[key] = value
    return merged


def resolve_settings(stored: StoreSettings | None, wanted: dict[str, Any], where: str) -> StoreSettings:
    """The settings to use: ``stored`` for an existing store (checked against ``wanted``), else new ones."""
    if stored is None:
        params = {**DEFAULT_HNSW, **wanted.get("index_params", {})}
        return StoreSettings(dimensions=wanted.get("dimensions"), metric=wanted.get("metric", "cosine"),
                             index=wanted.get("index", "hnsw"), index_params=params)
    for key in ("dimensions", "metric", "index"):
        want = wanted.get(key)
        have = getattr(stored, key)
        if want is not None and have is not None and want != have:
            raise SettingsMismatch(f"{where} was created with {key}={have!r}, but {key}={want!r} was given",
                                   hint=f"drop the {key} setting to use the store's own, or use a new store")
    for key, want in wanted.get("index_params", {}).items():
        have = stored.index_params.get(key)
        if key != "ef_search" and have is not None and have != want:
            raise SettingsMismatch(f"{where} was built with {key}={have}, but {key}={want} was given",
                                   hint="rebuild the store to change build-time index parameters")
    if wanted.get("dimensions") and stored.dimensions is None:
        return StoreSettings(wanted["dimensions"], stored.metric, stored.index, stored.index_params)
    ef = wanted.get("index_params", {}).get("ef_search")
    if ef:
        return StoreSettings(stored.dimensions, stored.metric, stored.index, {**stored.index_params, "ef_search": ef})
    return stored
