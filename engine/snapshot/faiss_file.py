"""``index.faiss``: a FAISS index of the exported vectors, for bundles of FAISS stores.

Rows are added in the order of the embeddings shards (ascending id), so label ``i`` is row ``i``.
Conventions (as the FAISS store uses them): cosine stores index L2-normalized vectors with inner
product, ``l2`` uses squared L2, ``inner_product`` inner product; ``hnsw`` is ``IndexHNSWFlat(d, m)``
with ``efConstruction``/``efSearch`` from the store's settings, ``flat`` is ``IndexFlat``. The
build runs single-threaded so the same rows always give the same bytes.

Exports write the flat index, streamed, never held in memory (:class:`FlatIndexStream`: the vectors
go to their place in the file as they arrive, byte-identical to ``faiss.write_index``). When the
exporter knows the row count up front (``expected_rows``: the store's count), the header is written
first and the file hashed as it is written; otherwise (or when the stream ends with another count) a
placeholder header is overwritten at the end and the file hashed in one more streamed read. A FAISS HNSW source whose graph holds exactly the
exported rows hands its graph over instead (renumbered to row order, see
``engine.repository.faiss_graph``): the file then holds that graph (``faiss_index_type: hnsw``) and
an HNSW target adopts it. :class:`FaissIndexBuilder` can still build an HNSW file in memory for
callers that ask for one.
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np

from engine.repository.base import DEFAULT_HNSW

from .checksums import HashingWriter


def _faiss():
    import faiss

    return faiss


def new_index(dimensions: int, metric: str, index_type: str, params: dict[str, int]) -> Any:
    faiss = _faiss()
    kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if index_type == "flat":
        return faiss.IndexFlat(dimensions, kind)
    index = faiss.IndexHNSWFlat(dimensions, int(params.get("m", 16)), kind)
    index.hnsw.efConstruction = int(params.get("ef_construction", DEFAULT_HNSW["ef_construction"]))
    index.hnsw.efSearch = int(params.get("ef_search", 40))
    return index


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        x = x.copy()
        _faiss().normalize_L2(x)
    return x


FLAT_FOURCC = {"l2": b"IxF2", "ip": b"IxFI"}
FAISS_HEADER_DUMMY = 1 << 20  # FAISS writes this constant twice in every index header
COPY_CHUNK = 8 << 20


class FlatIndexStream:
    """Writes ``IndexFlat`` in FAISS's format from streamed vectors with bounded memory.

    The rows go straight to their place in the file, written once. With ``expected_rows`` the header
    for that count goes first and every byte is hashed on its way out; :meth:`finish` then only fsyncs.
    Without it (or when another number of rows arrived) the header is a placeholder that :meth:`finish`
    overwrites before hashing the file in one streamed read (from the page cache).
    """

    HEADER_BYTES = 45

    def __init__(self, path: Path, dimensions: int, metric: str, expected_rows: int | None = None) -> None:
        self.path = path
        self.dimensions = dimensions
        self.metric = metric
        self.rows = 0
        self.expected_rows = expected_rows
        self.spill = open(path, "xb")  # noqa: SIM115 - closed by finish()/write_graph()/abort()
        self.digest = None if expected_rows is None else hashlib.sha256()
        self._write(b"\0" * self.HEADER_BYTES if expected_rows is None else self.header(expected_rows))

    def _write(self, data: bytes) -> None:
        if self.digest is not None:
            self.digest.update(data)
        self.spill.write(data)

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors):
            self._write(np.ascontiguousarray(prepare(vectors, self.metric), dtype="<f4").tobytes())
            self.rows += len(vectors)

    def header(self, rows: int | None = None) -> bytes:
        rows = self.rows if rows is None else rows
        l2 = self.metric == "l2"
        return (FLAT_FOURCC["l2" if l2 else "ip"]
                + struct.pack("<iqqq?iQ", self.dimensions, rows, FAISS_HEADER_DUMMY, FAISS_HEADER_DUMMY,
                              True, 1 if l2 else 0, rows * self.dimensions))

    def matches(self, graph: Any) -> bool:
        """Whether ``graph`` (an IndexHNSWFlat) stores exactly the rows written, in the same order."""
        if not self.spill.closed:
            self.spill.close()
        if int(graph.ntotal) != self.rows or int(graph.d) != self.dimensions:
            return False
        storage = _faiss().downcast_index(graph.storage)
        step = max(1, COPY_CHUNK // (4 * max(1, self.dimensions)))
        with open(self.path, "rb") as rows:
            rows.seek(self.HEADER_BYTES)
            for start in range(0, self.rows, step):
                n = min(step, self.rows - start)
                want = np.frombuffer(rows.read(4 * n * self.dimensions), dtype="<f4").reshape(n, self.dimensions)
                if not np.array_equal(storage.reconstruct_n(start, n), want):
                    return False
        return True

    def write_graph(self, graph: Any) -> tuple[str, int]:
        """Write ``graph`` (checked with :meth:`matches`) as the index file instead of the flat rows."""
        if not self.spill.closed:
            self.spill.close()
        os.unlink(self.path)
        sink = HashingWriter(self.path)
        try:
            writer = _faiss().PyCallbackIOWriter(sink.write)
            _faiss().write_index(graph, writer)
            del writer
        except BaseException:
            sink.abort()
            raise
        return sink.finish()

    def finish(self) -> tuple[str, int]:
        from .checksums import sha256_file

        header = self.header()
        assert len(header) == self.HEADER_BYTES
        streamed = self.digest is not None and self.rows == self.expected_rows and not self.spill.closed
        if self.spill.closed:
            self.spill = open(self.path, "r+b")  # noqa: SIM115 - closed right below
        with self.spill as fh:
            fh.flush()
            if not streamed:
                os.pwrite(fh.fileno(), header, 0)
            os.fsync(fh.fileno())
        if streamed:  # the header written first was right: every byte is already hashed
            return self.digest.hexdigest(), self.HEADER_BYTES + 4 * self.rows * self.dimensions
        return sha256_file(self.path)


class FaissIndexBuilder:
    """Adds exported vectors batch by batch, then writes the index through a HashingWriter.

    Flat indexes are delegated to :class:`FlatIndexStream` (bounded memory; ``expected_rows``, the
    row count when known up front, lets it hash the file as it writes it)."""

    def __init__(self, path: Path, dimensions: int, metric: str, index_type: str,
                 params: dict[str, int], expected_rows: int | None = None) -> None:
        self.path = path
        self.metric = metric
        self.stream = FlatIndexStream(path, dimensions, metric, expected_rows) if index_type == "flat" else None
        self.index = None if self.stream else new_index(dimensions, metric, index_type, params)
        self.carried_graph = False

    def add(self, vectors: np.ndarray) -> None:
        if self.stream is not None:
            self.stream.add(vectors)
        elif len(vectors):
            faiss = _faiss()
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)  # HNSW insertion order must not depend on thread timing
            try:
                self.index.add(prepare(vectors, self.metric))
            finally:
                faiss.omp_set_num_threads(threads)

    def add_batch(self, batch: Any) -> None:
        """:meth:`add` for a RecordBatch (rows must come in bundle row order)."""
        self.add(batch.vectors)

    def abort(self) -> None:
        """Drop what was built (the staging folder is removed by the caller)."""
        if self.stream is not None and not self.stream.spill.closed:
            self.stream.spill.close()
        self.index = None

    def finish(self, graph: Any = None) -> tuple[str, int]:
        """Serialize the index into ``path``; return its ``(sha256, size)``.

        ``graph``: the source store's HNSW graph in row order; written instead of the flat index when it
        holds exactly the exported rows (so an HNSW target adopts it and builds nothing).
        """
        if self.stream is not None:
            if graph is not None and self.stream.matches(graph):
                self.carried_graph = True
                return self.stream.write_graph(graph)
            return self.stream.finish()
        faiss = _faiss()
        sink = HashingWriter(self.path)
        try:
            writer = faiss.PyCallbackIOWriter(sink.write)
            faiss.write_index(self.index, writer)
            del writer
        except BaseException:
            sink.abort()
            raise
        self.index = None
        return sink.finish()


def index_problems(path: Path, record_count: int, dimensions: int, metric: str | None = None,
                   kind: str | None = None) -> list[str]:
    """Why ``index.faiss`` is unreadable or disagrees with the manifest (empty list when fine).

    Only the header is parsed (:mod:`.faiss_header`; the declared arrays must add up to the file's
    size), never the whole index: the file's bytes are checked by its streamed sha256. ``kind`` is
    the manifest's ``faiss_index_type`` (``flat`` when absent: what bundles of older versions hold).
    """
    from .faiss_header import HeaderError, read_header

    try:
        header = read_header(path)
    except (HeaderError, OSError) as exc:
        return [f"is not a FAISS index this tool reads ({str(exc)[:200]})"]
    problems = []
    if header.ntotal != record_count:
        problems.append(f"the index holds {header.ntotal} vectors, the manifest says record_count={record_count}")
    if header.dimensions != dimensions:
        problems.append(f"the index has {header.dimensions} dimensions, the manifest says {dimensions}")
    wanted = None if metric is None else ("l2" if metric == "l2" else "inner_product")
    if wanted is not None and header.metric != wanted:
        problems.append(f"the index ranks by {header.metric}, a {metric} store's index by {wanted}")
    if header.kind != (kind or "flat"):
        problems.append(f"the index is {header.kind}, the manifest says faiss_index_type={kind or 'flat'!r}")
    return problems
