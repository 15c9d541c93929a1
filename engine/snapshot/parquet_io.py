"""Embeddings Parquet files (a v2 shard or a v1 ``embeddings.parquet``): the Arrow schema, RecordBatch <->
Arrow conversion, streaming write and read.

Columns: ``id`` (string), ``vector`` (fixed-size list of float32, D), ``metadata`` (canonical JSON
text), ``version`` (int64), ``source_hash`` (string), ``created_ts``/``updated_ts``
(timestamp[us, UTC]), ``vector_hash`` (sha256 hex of the vector's little-endian float32 bytes).
Rows are in ascending id order. Row groups hold a fixed number of rows that depends only on D, so
the file's bytes depend only on its rows, never on how the source batched them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from engine.errors import BundleError
from engine.records import RecordBatch, make_batch

from .checksums import HashingWriter

COLUMNS = ("id", "vector", "metadata", "version", "source_hash", "created_ts", "updated_ts", "vector_hash")
# 8 MiB of vectors per row group: a reader decodes one row group at a time, and with 32 MiB a verify of
# 400,000 x 768 on two threads peaked at 527 MB, with 8 MiB at 237 MB (same file size, a little faster)
ROW_GROUP_BYTES = 8 << 20
VECTOR_ENCODINGS = ("plain", "byte_stream_split")
VECTOR_COLUMN_PATH = "vector.list.element"
TIMESTAMP = pa.timestamp("us", tz="UTC")


def rows_per_group(dimensions: int) -> int:
    """Rows per Parquet row group: about 8 MiB of vectors, between 1,024 and 65,536 rows."""
    return max(1024, min(65536, ROW_GROUP_BYTES // max(1, 4 * dimensions)))


def arrow_schema(dimensions: int) -> pa.Schema:
    return pa.schema([
        pa.field("id", pa.string(), nullable=False),
        pa.field("vector", pa.list_(pa.field("element", pa.float32(), nullable=False), dimensions),
                 nullable=False),
        pa.field("metadata", pa.string(), nullable=False),
        pa.field("version", pa.int64(), nullable=False),
        pa.field("source_hash", pa.string(), nullable=False),
        pa.field("created_ts", TIMESTAMP, nullable=False),
        pa.field("updated_ts", TIMESTAMP, nullable=False),
        pa.field("vector_hash", pa.string(), nullable=False),
    ])


def vector_hashes(vectors: np.ndarray) -> list[str]:
    """sha256 hex of each row's little-endian float32 bytes."""
    raw = np.ascontiguousarray(vectors, dtype="<f4")
    sha = hashlib.sha256
    return [sha(row).hexdigest() for row in raw]


def to_arrow(batch: RecordBatch, dimensions: int) -> pa.RecordBatch:
    """One RecordBatch as an Arrow record batch of the bundle schema (vector hashes computed here)."""
    vectors = np.ascontiguousarray(batch.vectors, dtype="<f4").reshape(len(batch), dimensions)
    flat = pa.array(vectors.reshape(-1), type=pa.float32())
    return pa.record_batch([
        pa.array(batch.ids, pa.string()),
        pa.FixedSizeListArray.from_arrays(flat, dimensions),
        pa.array(batch.metadata, pa.string()),
        pa.array(np.asarray(batch.versions, dtype=np.int64), pa.int64()),
        pa.array(batch.source_hashes, pa.string()),
        pa.array(np.asarray(batch.created_us, dtype=np.int64), pa.int64()).view(TIMESTAMP),
        pa.array(np.asarray(batch.updated_us, dtype=np.int64), pa.int64()).view(TIMESTAMP),
        pa.array(vector_hashes(vectors), pa.string()),
    ], schema=arrow_schema(dimensions))


def numpy_of(array: pa.Array) -> np.ndarray:
    """A primitive Arrow array (no nulls) as a NumPy view of its data buffer.

    ``Array.to_numpy`` imports pandas on its first call (about 40 MB and most of a second per
    process); reading the buffer does not. Arrays with nulls, or of a non-primitive type, go through
    ``to_numpy`` (nulls of a float array become NaN, which the row checks report)."""
    if isinstance(array, pa.ChunkedArray):
        array = array.combine_chunks()
    width = getattr(array.type, "bit_width", 0)
    if array.null_count or width not in (32, 64) or not (pa.types.is_integer(array.type)
                                                          or pa.types.is_floating(array.type)):
        return array.to_numpy(zero_copy_only=False)
    dtype = np.dtype(array.type.to_pandas_dtype()).newbyteorder("<")
    data = array.buffers()[1]
    if data is None:
        return np.zeros(0, dtype=dtype)
    return np.frombuffer(data, dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)


def vectors_of(column: pa.Array, dimensions: int) -> np.ndarray:
    """The ``(n, D)`` float32 array of a fixed-size-list vector column (a copy only if chunked)."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    flat = numpy_of(column.flatten())
    return np.ascontiguousarray(flat, dtype=np.float32).reshape(len(column), dimensions)


def from_arrow(table: pa.RecordBatch | pa.Table, dimensions: int) -> RecordBatch:
    """Arrow rows of the bundle schema back into an engine RecordBatch (not re-validated)."""
    def col(name: str):
        c = table.column(name)
        return c.combine_chunks() if isinstance(c, pa.ChunkedArray) else c

    return make_batch(
        ids=col("id").to_pylist(), vectors=vectors_of(col("vector"), dimensions),
        metadata=col("metadata").to_pylist(), versions=numpy_of(col("version")),
        source_hashes=col("source_hash").to_pylist(),
        created_us=numpy_of(col("created_ts").view(pa.int64())),
        updated_us=numpy_of(col("updated_ts").view(pa.int64())), validate=False)


class EmbeddingsWriter:
    """Streams RecordBatches into one embeddings Parquet file (a shard) through a HashingWriter.

    Rows are regrouped into row groups of exactly :func:`rows_per_group` rows (the last may be
    shorter), so equal rows give equal bytes whatever the input batch sizes were.
    """

    def __init__(self, path: Path, dimensions: int, compression_level: int = 1,
                 vector_encoding: str = "plain") -> None:
        if vector_encoding not in VECTOR_ENCODINGS:
            raise BundleError(f"unknown vector encoding {vector_encoding!r}",
                              hint=f"use one of {', '.join(VECTOR_ENCODINGS)}")
        self.dimensions = dimensions
        self.group_rows = rows_per_group(dimensions)
        self.schema = arrow_schema(dimensions)
        self.sink = HashingWriter(path)
        self._pending: list[pa.RecordBatch] = []
        self._pending_rows = 0
        self.rows = 0
        self._writer = pq.ParquetWriter(
            self.sink, self.schema, compression="zstd", compression_level=compression_level,
            version="2.6", data_page_version="1.0", use_dictionary=False, write_statistics=["id"],
            sorting_columns=[pq.SortingColumn(0)], store_schema=True, write_page_index=False,
            **_encoding_options(vector_encoding))

    def write(self, batch: RecordBatch) -> None:
        if len(batch):
            self.write_arrow(to_arrow(batch, self.dimensions))

    def write_arrow(self, arrow_batch: pa.RecordBatch) -> None:
        """Append rows already converted with :func:`to_arrow`."""
        n = arrow_batch.num_rows
        if not n:
            return
        self._pending.append(arrow_batch)
        self._pending_rows += n
        self.rows += n
        while self._pending_rows >= self.group_rows:
            self._flush(self.group_rows)

    def _flush(self, n: int) -> None:
        table = pa.Table.from_batches(self._pending, schema=self.schema)
        self._writer.write_table(table.slice(0, n), row_group_size=n)
        rest = table.slice(n)
        self._pending = rest.to_batches() if rest.num_rows else []
        self._pending_rows = rest.num_rows

    def finish(self) -> tuple[str, int]:
        """Write the last row group and the footer; fsync; return ``(sha256, size)``."""
        if self._pending_rows:
            self._flush(self._pending_rows)
        self._writer.close()
        return self.sink.finish()

    def abort(self) -> None:
        try:
            self._writer.close()
        except Exception:  # noqa: BLE001 - already failing; the staging folder is removed next
            pass
        self.sink.abort()


def _encoding_options(vector_encoding: str) -> dict[str, Any]:
    """ParquetWriter options for the vector column: BYTE_STREAM_SPLIT puts the 4 bytes of every float in
    4 separate streams, so zstd finds the (similar) exponent bytes together; ``plain`` leaves it PLAIN."""
    if vector_encoding == "plain":
        return {}
    return {"column_encoding": {VECTOR_COLUMN_PATH: "BYTE_STREAM_SPLIT"}}


def open_embeddings(path: Path) -> pq.ParquetFile:
    """Open an embeddings Parquet file for reading; raise BundleError when it is not readable Parquet."""
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise BundleError(f"{path.name} is not readable Parquet ({exc})") from exc


def schema_problems(schema: pa.Schema, dimensions: int) -> list[str]:
    """Differences between a file's Arrow schema and the bundle schema for ``dimensions``."""
    expected = arrow_schema(dimensions)
    problems = []
    if schema.names != expected.names:
        problems.append(f"columns are {schema.names}, expected {list(COLUMNS)}")
        return problems
    for got, want in zip(schema, expected, strict=True):
        if not got.type.equals(want.type):
            problems.append(f"column {got.name} has type {got.type}, expected {want.type}")
    return problems


def iter_arrow(pf: pq.ParquetFile, batch_size: int, columns: list[str] | None = None) -> Iterator[pa.RecordBatch]:
    """The file's rows in batches of at most ``batch_size``, one row group at a time.

    ``ParquetFile.iter_batches`` over the whole file buffers row groups ahead (hundreds of MB for a
    100,000-row shard of 768-d vectors); reading row group by row group keeps memory at about one
    row group (8 MiB of vectors) whatever the file's size.
    """
    for group in range(pf.metadata.num_row_groups):
        yield from pf.iter_batches(batch_size=batch_size, row_groups=[group], columns=columns, use_threads=False)


def read_batches(path: Path, dimensions: int, batch_size: int = 10_000) -> Iterator[RecordBatch]:
    """The file's rows as engine RecordBatches of at most ``batch_size`` rows, in file order."""
    pf = open_embeddings(path)
    for arrow_batch in iter_arrow(pf, batch_size):
        yield from_arrow(arrow_batch, dimensions)


def describe(pf: pq.ParquetFile) -> dict[str, Any]:
    meta = pf.metadata
    return {"rows": meta.num_rows, "row_groups": meta.num_row_groups, "created_by": meta.created_by}
