"""The FAISS half of a FAISS store: the in-memory index, its checkpoint files, exact distances.

The index is derived from ``store.sqlite``. A checkpoint file ``index.<seq>.faiss`` holds the
index as of sequence ``seq``; :class:`LiveIndex` loads it and catches up from the change log
(vectors with newer labels are added, labels that died since are removed (flat) or excluded at
search time (hnsw, which cannot remove)). Cosine stores index L2-normalized copies with inner
product; l2 stores give squared distances, so callers rescore candidates exactly
(:mod:`.faiss_scoring`).
"""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import faiss
import numpy as np

from engine.errors import StoreCorrupt

from .artifacts import fsync_dir
from .base import DEFAULT_HNSW, StoreSettings
from .faiss_meta import MetaStore, State
from .faiss_scoring import prepare

CHECKPOINT_RE = re.compile(r"^index\.(\d+)\.faiss(\.tmp)?$")
T = TypeVar("T")
CATCHUP_CHUNK = 8_192


class CheckpointGone(Exception):
    """The checkpoint named by a (now stale) state was removed by a concurrent fold; retry."""


def checkpoint_name(seq: int) -> str:
    return f"index.{seq}.faiss"


def empty_index(settings: StoreSettings) -> faiss.Index:
    d = int(settings.dimensions or 0)
    kind = faiss.METRIC_L2 if settings.metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if settings.index == "flat":
        inner = faiss.IndexFlatL2(d) if kind == faiss.METRIC_L2 else faiss.IndexFlatIP(d)
    else:
        inner = faiss.IndexHNSWFlat(d, int(settings.index_params.get("m", 16)), kind)
        inner.hnsw.efConstruction = int(settings.index_params.get("ef_construction", DEFAULT_HNSW["ef_construction"]))
    return faiss.IndexIDMap2(inner)


def write_checkpoint(index: faiss.Index, folder: Path, seq: int) -> str:
    """Write ``index.<seq>.faiss`` durably (temp file, fsync, rename, fsync dir); return its name."""
    name = checkpoint_name(seq)
    tmp = folder / f"{name}.tmp"
    try:
        faiss.write_index(index, str(tmp))
        with open(tmp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, folder / name)
    except RuntimeError as exc:  # FAISS reports a failed write (a full disk) as a RuntimeError
        tmp.unlink(missing_ok=True)
        from engine.errors import os_error

        reason = " ".join(str(exc).split())
        code = errno.ENOSPC if "no space" in reason.lower() else errno.EIO
        raise os_error(OSError(code, os.strerror(code), str(tmp)), "write the store's index checkpoint") from exc
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(folder)
    return name


def remove_stale_checkpoints(folder: Path, keep: str | None) -> None:
    """Delete checkpoint files (and temp files) other than ``keep``; call only under the write lock."""
    for entry in folder.iterdir():
        if CHECKPOINT_RE.match(entry.name) and entry.name != keep:
            entry.unlink(missing_ok=True)


class LiveIndex:
    """The in-memory index at sequence ``seq``, holding every label below ``label_bound``.

    ``dead`` (hnsw only) holds labels still in the graph whose records are gone.
    """

    def __init__(self, settings: StoreSettings, folder: Path) -> None:
        self.settings = settings
        self.folder = folder
        self.index: faiss.Index | None = None
        self.seq = -1
        self.label_bound = 0
        self.dead: set[int] = set()
        self._clean_seq = 0
        self._selector: tuple[object, object] | None = None

    @property
    def loaded(self) -> bool:
        return self.index is not None

    @property
    def clean_seq(self) -> int:
        """Labels that died at or before this sequence are not in the index."""
        return self.seq if self.settings.index == "flat" or not self.dead else self._clean_seq

    @property
    def live_count(self) -> int:
        return 0 if self.index is None else int(self.index.ntotal) - len(self.dead)

    def synced(self, meta: MetaStore, then: Callable[[State], T], *, catchup_max: int) -> T:
        """Run ``then(state)`` in one read transaction of ``meta`` with the index synced to that state."""
        for attempt in range(4):
            with meta.read():
                state = meta.state()
                try:  # the last attempt ignores the checkpoint file and rebuilds from store.sqlite
                    self.sync(meta, state, catchup_max=catchup_max, rebuild=attempt == 3)
                except CheckpointGone:
                    continue  # a concurrent fold replaced it; read the newer state
                return then(state)
        raise AssertionError("unreachable: the last attempt does not read a checkpoint")

    def fold(self, meta: MetaStore, *, purge: bool, rebuild_fraction: float, catchup_max: int) -> None:
        """Write the index as checkpoint ``index.<seq>.faiss``, point the state at it, delete older files.

        Call under the store's write lock. The file is durable before SQLite names it, so a crash at
        any point leaves either the old checkpoint in use (and an orphan file) or the new one.
        An hnsw graph is rebuilt from live vectors when ``purge`` or more than ``rebuild_fraction``
        of it is dead.
        """
        def bring_up(state: State) -> tuple[State, bool]:
            dead = len(self.dead)
            if dead and (purge or dead > rebuild_fraction * self.index.ntotal):
                self.sync(meta, state, rebuild=True)
                return state, True
            return state, False

        state, rebuilt = self.synced(meta, bring_up, catchup_max=catchup_max)
        if self.seq == state.checkpoint_seq and not rebuilt and state.checkpoint_file is not None:
            remove_stale_checkpoints(self.folder, state.checkpoint_file)
            return
        name = write_checkpoint(self.index, self.folder, self.seq)
        with meta.write():
            meta.update_state(checkpoint_seq=self.seq, checkpoint_file=name, checkpoint_label=self.label_bound,
                              clean_seq=self.clean_seq)
        remove_stale_checkpoints(self.folder, name)

    def sync(self, meta: MetaStore, state: State, *, catchup_max: int = 20_000, rebuild: bool = False) -> None:
        """Bring the index to ``state`` (call inside one read transaction of ``meta``)."""
        if rebuild:
            self._reset(empty_index(self.settings), 0, 0, set())
        elif (self.index is None or self.seq < state.floor_seq
              or (self.seq < state.checkpoint_seq and state.next_label - self.label_bound > catchup_max)):
            self._load(meta, state)
        elif self.seq > state.seq:  # the store was replaced under us by a shorter history: start over
            self._load(meta, state)
        if self.seq == state.seq:
            return
        assert self.index is not None
        fresh = self.label_bound == 0  # built from nothing: no dead label will be in it
        for labels, vectors in meta.vectors_from_label(self.label_bound, CATCHUP_CHUNK):
            self.index.add_with_ids(prepare(vectors, self.settings.metric), labels)
        gone = meta.dead_between(self.seq, state.seq, self.label_bound)
        if len(gone):
            if self.settings.index == "flat":
                self.index.remove_ids(gone)
            else:
                self.dead.update(int(x) for x in gone)
                self._selector = None
        self.seq, self.label_bound = state.seq, state.next_label
        if fresh:
            self._clean_seq = state.seq

    def _load(self, meta: MetaStore, state: State) -> None:
        if state.checkpoint_file is None:
            self._reset(empty_index(self.settings), 0, 0, set())
            return
        path = self.folder / state.checkpoint_file
        if not path.exists():
            raise CheckpointGone(str(path))
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:
            if not path.exists():
                raise CheckpointGone(str(path)) from exc
            raise StoreCorrupt(f"index checkpoint {path} cannot be read ({exc})",
                               hint="delete the file; the index is rebuilt from store.sqlite") from exc
        if index.d != self.settings.dimensions:
            raise StoreCorrupt(f"index checkpoint {path} has {index.d} dimensions, the store {self.settings.dimensions}",
                               hint="delete the file; the index is rebuilt from store.sqlite")
        dead = meta.dead_between(state.clean_seq, state.checkpoint_seq, state.checkpoint_label)
        if self.settings.index == "flat" and len(dead):
            index.remove_ids(dead)
            dead = dead[:0]
        self._reset(index, state.checkpoint_seq, state.checkpoint_label, {int(x) for x in dead}, state.clean_seq)

    def adopt(self, index: faiss.Index, state: State) -> None:
        """Use ``index`` (holding exactly the live labels below ``state.next_label``) as the index at ``state``."""
        self._reset(index, state.seq, state.next_label, set(), state.seq)

    def _reset(self, index: faiss.Index, seq: int, label_bound: int, dead: set[int], clean_seq: int = 0) -> None:
        self.index, self.seq, self.label_bound, self.dead, self._selector = index, seq, label_bound, dead, None
        self._clean_seq = clean_seq

    def nearest(self, query: np.ndarray, k: int, ef_search: int) -> np.ndarray | None:
        """Labels holding the ``k`` nearest (plus any tied with the k-th), or None if hnsw came back short."""
        assert self.index is not None
        want, ntotal = k + 1, int(self.index.ntotal)
        ef = max(ef_search, want)
        while True:
            dist, labels = self.search(query, want, ef)
            if len(labels) < min(want, self.live_count):  # hnsw missed live vectors: widen the search
                if ef >= 2 * ntotal:
                    return None
                ef *= 4
            elif len(labels) < want or dist[k] != dist[k - 1] or want >= ntotal:
                return labels
            else:
                want = min(want * 2, ntotal)  # a tie crosses the k-th place: look further

    def search(self, query: np.ndarray, k: int, ef_search: int) -> tuple[np.ndarray, np.ndarray]:
        """Up to ``k`` ``(index distances, labels)`` for one query, best first; dead labels never appear."""
        assert self.index is not None
        k = min(k, int(self.index.ntotal))
        if k <= 0:
            return np.zeros(0, np.float32), np.zeros(0, np.int64)
        q = prepare(query.reshape(1, -1), self.settings.metric)
        if self.settings.index == "flat":
            dist, labels = self.index.search(q, k)
        else:
            params = faiss.SearchParametersHNSW()
            params.efSearch = max(int(ef_search), k)
            if self.dead:
                if self._selector is None:
                    batch = faiss.IDSelectorBatch(np.fromiter(self.dead, dtype=np.int64, count=len(self.dead)))
                    self._selector = (batch, faiss.IDSelectorNot(batch))
                params.sel = self._selector[1]
            dist, labels = self.index.search(q, k, params=params)
        keep = labels[0] >= 0
        return dist[0][keep], labels[0][keep]

