"""Store operations of the front door: seed, stats and query (the freeze flag: :mod:`.freeze`).

The CLI, the BPMN script tasks and the web panel call only these functions. Each opens the store it
is given (or ``$VECTOR_ENDPOINT`` when ``uri`` is None) and closes it before returning. Heavy
libraries (FAISS, psycopg, pyarrow) are imported by the backend that needs them, never here.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import IngestionPaused, InvalidInput, RecordNotFound, os_errors

if TYPE_CHECKING:
    import numpy as np

    from engine.repository import Hit, VectorRepository


@contextmanager
def opened(uri: str | None, *, create: bool = False, **settings: Any) -> Iterator[VectorRepository]:
    """Open the store named by ``uri`` (``$VECTOR_ENDPOINT`` when None) and close it on exit.

    Only operations that write new data pass ``create=True``; for the others a store that does not
    exist is a StoreNotFound error (a mistyped path must not silently become an empty store).
    """
    from engine.repository import open_repository

    repo = open_repository(uri, create=create, **settings)
    try:
        yield repo
    finally:
        repo.close()


def _refuse_if_paused(repo: VectorRepository) -> None:
    frozen = repo.freeze_state()
    if frozen.paused and not frozen.stale:  # a stale freeze is cleared by the write itself
        raise IngestionPaused(f"ingestion into {repo.uri} is paused; nothing was written",
                              hint=f"resume it first: procos store resume {shlex.quote(repo.uri)}")


# --- store operations ----------------------------------------------------------------------------


@os_errors("seed the store")
def seed_store(uri: str | None, count: int, dim: int, seed: int = 0, *, artifacts: bool = True,
               batch_size: int = 10_000) -> dict[str, Any]:
    """Bulk-load ``count`` deterministic synthetic records of ``dim`` dimensions (and the artifacts).

    Returns ``{"uri", "backend", "written", "skipped", "count", "dimensions", "artifacts",
    "seconds", "rows_per_second"}``; ``count`` is the store's size afterwards. Raises
    IngestionPaused while the store is paused, SettingsMismatch when ``dim`` differs from the store's.
    """
    from engine.synthetic import synthetic_artifacts, synthetic_batches

    if count < 0:
        raise InvalidInput(f"count must be zero or more, got {count}")
    if dim <= 0:
        raise InvalidInput(f"dimensions must be positive, got {dim}")
    with opened(uri, create=True, dimensions=dim) as repo:
        _refuse_if_paused(repo)
        started = time.perf_counter()
        result = repo.bulk_load(synthetic_batches(count, dim, seed=seed, batch_size=batch_size))
        files = synthetic_artifacts(seed) if artifacts else {}
        for path, data in files.items():
            repo.artifacts.write(path, data)
        seconds = time.perf_counter() - started
        return {"uri": repo.uri, "backend": repo.backend, "written": result.written,
                "skipped": result.skipped, "count": repo.count(), "dimensions": repo.dimensions,
                "artifacts": len(files), "seconds": round(seconds, 3),
                "rows_per_second": round(count / seconds, 1) if seconds > 0 else None}


def store_stats(uri: str | None) -> dict[str, Any]:
    """``{"backend", "count", "dimensions", "metric", "index", "paused", "stale", "held_by",
    "lease_expires", "sequence", "index_build", ...}`` of the store (``stale``: a freeze whose holder
    is gone or whose lease expired, which the next writer clears).

    ``index_build`` is ``{"state": "building"|"ready"|"missing"|"invalid", "percent", "eta_seconds", "phase"}``
    (pgvector: from ``pg_stat_progress_create_index``; FAISS and flat stores are always ``ready``).
    """
    with opened(uri) as repo:
        return dict(repo.stats())


def wait_index(uri: str | None, *, timeout: float | None = None, poll: float = 0.5) -> dict[str, Any]:
    """Block until the store's HNSW index is ready: ``{"uri", "index_build", "built", "seconds"}``.

    While another process builds it, this follows its progress (reported as op ``"index"`` in percent);
    when nobody builds it and it is missing or invalid (a build that died), this builds it itself
    (``"built": true``). With ``timeout`` (seconds) it returns the state reached by then.
    """
    from engine import progress

    started = time.perf_counter()
    built = False
    with opened(uri) as repo:
        read = getattr(repo, "index_build", None)
        state = read() if read is not None else {"state": "ready", "percent": 100.0, "eta_seconds": 0.0, "phase": None}
        if state["state"] in ("missing", "invalid"):
            built = bool(repo.build_search_index())  # type: ignore[attr-defined]
            state = read()
        elif state["state"] == "building":
            from engine.repository.pg_index_build import wait_ready

            state = wait_ready(read, timeout=timeout, poll=poll,
                               on_progress=lambda s: progress.update("index", int(s["percent"]), 100, "%"))
            if state["state"] in ("missing", "invalid") and (timeout is None or time.perf_counter() - started < timeout):
                built = bool(repo.build_search_index())  # type: ignore[attr-defined]
                state = read()
        return {"uri": repo.uri, "index_build": state, "built": built,
                "seconds": round(time.perf_counter() - started, 3)}


def query_store(uri: str | None, *, record_id: str | None = None, vector: Any = None, k: int = 10,
                filters: dict[str, Any] | None = None) -> list[Hit]:
    """The ``k`` nearest records to ``vector``, or to the stored vector of ``record_id``.

    Exactly one of ``record_id`` and ``vector`` must be given. Raises RecordNotFound for an unknown
    id and InvalidInput for a vector of the wrong shape or a ``k`` below 1.
    """
    import numpy as np

    if (record_id is None) == (vector is None):
        raise InvalidInput("give exactly one of a record id or a query vector")
    if k < 1:
        raise InvalidInput(f"k must be at least 1, got {k}")
    with opened(uri) as repo:
        if record_id is not None:
            found = repo.fetch([record_id])
            if not found:
                raise RecordNotFound(f"no record with id {record_id!r} in {repo.uri}",
                                     hint="ids are case-sensitive; query by vector (--vector-file) "
                                          "to see the ids the store holds")
            query = found[0].vector
        else:
            query = np.asarray(vector, dtype=np.float32)
            dims = repo.dimensions
            if query.ndim != 1 or (dims is not None and query.shape[0] != dims):
                raise InvalidInput(f"the query vector has shape {query.shape}, the store holds "
                                   f"{dims}-dimensional vectors")
        return repo.query(query, k, filters)


def load_query_vector(path: str | Path) -> np.ndarray:
    """A 1-D float32 query vector from a ``.npy`` file or a JSON list of numbers.

    Raises InvalidInput naming the file when it is missing, unreadable, or not one finite vector.
    """
    import numpy as np

    p = Path(path)
    if not p.is_file():
        raise InvalidInput(f"vector file {str(p)!r} does not exist")
    try:
        if p.suffix.lower() == ".npy":
            raw = np.load(p, allow_pickle=False)
        else:
            raw = json.loads(p.read_text(encoding="utf-8"))
        vec = np.asarray(raw, dtype=np.float32)
    except (OSError, ValueError, TypeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read a vector from {str(p)!r}: {exc}",
                           hint="give a .npy file or a JSON list of numbers such as [0.1, 0.2]") from exc
    if vec.ndim == 2 and vec.shape[0] == 1:
        vec = vec[0]
    if vec.ndim != 1 or vec.size == 0:
        raise InvalidInput(f"vector file {str(p)!r} holds shape {vec.shape}, not one vector",
                           hint="give a .npy file or a JSON list of numbers such as [0.1, 0.2]")
    if not np.isfinite(vec).all():
        raise InvalidInput(f"vector file {str(p)!r} contains NaN or Inf")
    return vec
