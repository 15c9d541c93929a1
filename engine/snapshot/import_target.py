"""The store an import writes to: opened (created when new) with the bundle's dimensions, metric and
index settings; and the two questions the importer asks about it before it does (is the store there,
does it load a whole import in one transaction)."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from engine.errors import SettingsMismatch

from . import reader

if TYPE_CHECKING:
    from engine.repository import VectorRepository


def atomic_loads(uri: str) -> bool:
    """Whether the store at ``uri`` loads a whole import in one transaction (pgvector), so that rows can
    be checked while they load and the load rolled back when one fails."""
    from engine.repository import parse_uri

    return parse_uri(uri).scheme in ("postgresql", "postgresql+embedded")


def exists(uri: str) -> bool:
    from engine.errors import StoreNotFound
    from engine.repository import open_repository

    try:
        open_repository(uri, create=False).close()
    except StoreNotFound:
        return False
    return True


def open_target(uri: str, doc: dict[str, Any] | str | os.PathLike[str]) -> VectorRepository:
    """Open (creating when new) the store ``uri`` with the bundle's dimensions, metric and index settings.

    ``doc`` is a manifest dict or a bundle path. Settings the URI states itself win for the index;
    an existing store with another metric or dimensions raises SettingsMismatch. An existing store
    built with other index parameters is opened as it is.
    """
    from engine.repository import open_repository, parse_uri

    if not isinstance(doc, dict):
        doc = reader.manifest_of(doc)
    options = parse_uri(uri).options
    dims = doc.get("dimensions") or None
    metric = doc["metric"]
    index = None if "index" in options else doc["index"]["type"]
    params = {k: v for k, v in doc["index"]["params"].items() if k not in options}
    try:
        return open_repository(uri, dimensions=dims, metric=metric, index=index, index_params=params or None)
    except SettingsMismatch as first:
        try:
            repo = open_repository(uri, dimensions=dims, metric=metric)
        except SettingsMismatch:
            raise SettingsMismatch(
                f"cannot import a bundle with metric={metric!r}, dimensions={dims} into {uri}: {first.message}",
                hint="import into a new store, or into one created with the bundle's metric and dimensions"
            ) from first
        return repo
