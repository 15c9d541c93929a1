"""SQLite failures of a FAISS store as typed errors: one line, the store named, a hint.

:func:`translate` wraps the public methods of :class:`~engine.repository.faiss.FaissRepository`
(generators too) so that a full disk is :class:`~engine.errors.DiskFull`, a read-only file a
:class:`~engine.errors.PathError`, a busy database :class:`~engine.errors.StoreLocked`, a damaged
file :class:`~engine.errors.StoreCorrupt`, and anything else a :class:`~engine.errors.StoreError`.
SQLite reports a write refused by the OS (ENOSPC, or EFBIG past the file size limit) as a plain
"disk I/O error"; when the store's filesystem or the file size limit leaves no room, that is
reported as the full disk it is.
"""

from __future__ import annotations

import functools
import inspect
import resource
import shutil
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from engine.errors import DiskFull, PathError, StoreCorrupt, StoreError, StoreLocked

ROOM = 4 << 20  # a write failing with less than this left (space, or below the file size limit) ran out of room
METHODS = ("upsert", "write_batch", "bulk_load", "replace_all", "delete", "query", "fetch", "count",
           "iter_batches", "iter_records", "sequence", "changes_since", "compact", "pause_ingestion",
           "renew_pause", "resume_ingestion", "freeze_state", "is_paused", "stats")


def sqlite_error(repo: Any, exc: sqlite3.Error) -> Exception:
    """A typed error, on one line with a hint, for an SQLite failure inside a store operation."""
    text = " ".join(str(exc).split())
    where = repo.path / "store.sqlite"
    lowered = text.lower()
    if "disk i/o error" in lowered and _out_of_room(repo.path):
        text += (f" ({getattr(exc, 'sqlite_errorname', 'SQLITE_IOERR')}: no space left, the disk is full or the "
                 "file size limit was reached)")
        lowered += " full"
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


def _out_of_room(folder: Path) -> bool:
    """Whether a write error in ``folder`` is explained by a full filesystem or the process's file size limit."""
    try:
        if shutil.disk_usage(folder).free < ROOM:
            return True
        soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    except OSError:
        return False
    if soft == resource.RLIM_INFINITY:
        return False
    sizes = [p.stat().st_size for p in folder.glob("store.sqlite*") if p.is_file()]
    return any(size + ROOM > soft for size in sizes)


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
