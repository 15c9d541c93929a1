"""SQLite failures of a FAISS store as typed errors: one line, the store named, a hint.

:func:`translate` wraps the public methods of :class:`~engine.repository.faiss.FaissRepository`
(generators too) so that a full disk is :class:`~engine.errors.DiskFull`, a read-only file a
:class:`~engine.errors.PathError`, a busy database :class:`~engine.errors.StoreLocked`, a damaged
file :class:`~engine.errors.StoreCorrupt`, and anything else a :class:`~engine.errors.StoreError`.
"""

from __future__ import annotations

import functools
import inspect
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

from engine.errors import DiskFull, PathError, StoreCorrupt, StoreError, StoreLocked

METHODS = ("upsert", "write_batch", "bulk_load", "replace_all", "delete", "query", "fetch", "count",
           "iter_batches", "iter_records", "sequence", "changes_since", "compact", "pause_ingestion",
           "renew_pause", "resume_ingestion", "freeze_state", "is_paused", "stats")


def sqlite_error(repo: Any, exc: sqlite3.Error) -> Exception:
    """A typed error, on one line with a hint, for an SQLite failure inside a store operation."""
    text = " ".join(str(exc).split())
    where = repo.path / "store.sqlite"
    lowered = text.lower()
    if "full" in lowered:
        return DiskFull(f"cannot write to the store {repo.uri}: {text} ({where})",
                        hint="free space on the filesystem holding the store, then run it again; "
                             "the write was rolled back")
    if "readonly" in lowered or "read-only" in lowered:
        return PathError(f"cannot write to the store {repo.uri}: {text} ({where})",
                         hint="open the store where this user may write, or fix the file's permissions")
    if "locked" in lowered or "busy" in lowered:
        return StoreLocked(f"store {repo.uri} is locked: {text}", hint="wait for the other writer and retry")
    if "malformed" in lowered or "not a database" in lowered:
        return StoreCorrupt(f"the store {repo.uri} is damaged: {text} ({where})",
                            hint="restore the store from a snapshot bundle")
    return StoreError(f"the store {repo.uri} failed: {text} ({where})",
                      hint="check the store's folder and filesystem, then run it again")


def _wrap(method: Callable[..., Any]) -> Callable[..., Any]:
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except sqlite3.Error as exc:
                raise sqlite_error(self, exc) from exc
        return stream

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise sqlite_error(self, exc) from exc
    return call


def translate(cls: type) -> None:
    """Wrap every public method of the FAISS repository class ``cls`` (see the module docstring)."""
    for name in METHODS:
        setattr(cls, name, _wrap(getattr(cls, name)))
