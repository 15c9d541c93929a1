"""PostgreSQL ``COPY ... (FORMAT BINARY)`` for record batches, encoded and decoded with NumPy.

Rows carry their fixed-width fields first (bigints, timestamps, the pgvector ``vector``), so a
whole batch's fixed part is one NumPy structured array; only the short variable-length tail
(id, metadata, source hash) is handled per row. Vectors travel in pgvector's binary format:
int16 dimensions, int16 zero, then big-endian float32 values.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

import numpy as np

from engine.errors import StoreCorrupt
from engine.records import RecordBatch

HEADER = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
TRAILER = struct.pack(">h", -1)
PG_EPOCH_US = 946_684_800 * 1_000_000  # 2000-01-01 in microseconds since the Unix epoch

# Column order of what we write (staging tables take every column) and of what we read back.
WRITE_COLUMNS = ("version", "created_ts", "updated_ts", "seq", "embedding",
                 "id", "metadata_json", "metadata", "source_hash")
READ_COLUMNS = ("version", "created_ts", "updated_ts", "embedding", "id", "metadata_json", "source_hash")

_LEN = struct.Struct(">i")
_FIELDS = struct.Struct(">h")


def _fixed_dtype(dims: int, bigints: tuple[str, ...]) -> np.dtype:
    fields: list[tuple] = [("nfields", ">i2")]
    for name in bigints:
        fields += [(f"len_{name}", ">i4"), (name, ">i8")]
    fields += [("len_vec", ">i4"), ("dim", ">i2"), ("unused", ">i2"), ("vec", ">f4", (dims,))]
    return np.dtype(fields)


def write_dtype(dims: int) -> np.dtype:
    return _fixed_dtype(dims, ("version", "created", "updated", "seq"))


def read_dtype(dims: int) -> np.dtype:
    return _fixed_dtype(dims, ("version", "created", "updated"))


def encode_rows(batch: RecordBatch, seq: int, head: bytes = b"", tail: bytes = b"") -> bytes:
    """The rows of ``batch`` (columns :data:`WRITE_COLUMNS`, all stamped ``seq``) between ``head`` and ``tail``
    (one copy: the payload is joined once)."""
    n, dims = batch.vectors.shape
    fixed = np.empty(n, dtype=write_dtype(dims))
    fixed["nfields"] = len(WRITE_COLUMNS)
    for name, values in (("version", batch.versions), ("created", batch.created_us - PG_EPOCH_US),
                         ("updated", batch.updated_us - PG_EPOCH_US), ("seq", seq)):
        fixed[f"len_{name}"] = 8
        fixed[name] = values
    fixed["len_vec"] = 4 + 4 * dims
    fixed["dim"] = dims
    fixed["unused"] = 0
    fixed["vec"] = batch.vectors
    width = fixed.dtype.itemsize
    view = memoryview(fixed).cast("B")
    pack = _LEN.pack
    parts: list[bytes | memoryview] = [head]
    append = parts.append
    for i, (rid, meta, src) in enumerate(zip(batch.ids, batch.metadata, batch.source_hashes, strict=True)):
        idb = rid.encode()
        mb = meta.encode()
        sb = src.encode()
        append(view[i * width:(i + 1) * width])
        # metadata_json as text, metadata as jsonb (version byte 1 + the same text)
        append(pack(len(idb)) + idb + pack(len(mb)) + mb + pack(len(mb) + 1) + b"\x01" + mb
               + pack(len(sb)) + sb)
    append(tail)
    return b"".join(parts)


def encode_batch(batch: RecordBatch, seq: int) -> bytes:
    """A complete COPY BINARY payload (header, rows, trailer) for one batch."""
    return encode_rows(batch, seq, HEADER, TRAILER)


class _Accumulator:
    """Decoded rows of the batch being built: fixed parts in one array, strings in lists."""

    def __init__(self, dtype: np.dtype, size: int) -> None:
        self.dtype = dtype
        self.size = size
        self.fixed = np.empty(size, dtype=dtype)
        self.raw = memoryview(self.fixed).cast("B")
        self.n = 0
        self.ids: list[str] = []
        self.meta: list[str] = []
        self.src: list[str] = []

    def batch(self) -> RecordBatch:
        rows = self.fixed[: self.n]
        ncols = len(READ_COLUMNS)
        if self.n and ((rows["nfields"] != ncols).any() or (rows["len_vec"] != 4 + 4 * rows["vec"].shape[1]).any()
                       or (rows["len_version"] != 8).any() or (rows["len_created"] != 8).any()
                       or (rows["len_updated"] != 8).any()):
            raise StoreCorrupt("COPY stream rows do not have the expected columns or dimensions",
                               hint="the table's vector dimensions differ from the store state")
        out = RecordBatch(
            ids=self.ids, vectors=np.ascontiguousarray(rows["vec"], dtype=np.float32), metadata=self.meta,
            versions=rows["version"].astype(np.int64), source_hashes=self.src,
            created_us=rows["created"].astype(np.int64) + PG_EPOCH_US,
            updated_us=rows["updated"].astype(np.int64) + PG_EPOCH_US)
        self.n = 0
        self.ids, self.meta, self.src = [], [], []
        self.fixed = np.empty(self.size, dtype=self.dtype)
        self.raw = memoryview(self.fixed).cast("B")
        return out


def decode_stream(chunks: Iterable[bytes | memoryview], dims: int, batch_size: int,
                  min_parse: int = 1 << 18) -> Iterator[RecordBatch]:
    """Decode a COPY BINARY stream of :data:`READ_COLUMNS` rows into batches of ``batch_size`` rows.

    Memory stays bounded by one batch plus one buffered chunk, whatever the stream's length.
    """
    dtype = read_dtype(dims)
    width = dtype.itemsize
    acc = _Accumulator(dtype, batch_size)
    buf = bytearray()
    header_done = False
    finished = False
    for chunk in chunks:
        buf += chunk
        if len(buf) < min_parse or finished:
            continue
        if not header_done:
            header_done = _check_header(buf)
            if not header_done:
                continue
            del buf[:len(HEADER)]
        consumed, finished = yield from _parse(buf, acc, width)
        del buf[:consumed]
    if not header_done:
        if not buf:
            return
        if not _check_header(buf):
            raise StoreCorrupt("COPY stream ended inside its header")
        del buf[:len(HEADER)]
    if not finished:
        consumed, finished = yield from _parse(buf, acc, width)
        del buf[:consumed]
    if not finished or buf:
        raise StoreCorrupt("COPY stream ended in the middle of a row")
    if acc.n:
        yield acc.batch()


def _check_header(buf: bytearray) -> bool:
    if len(buf) < len(HEADER):
        return False
    if bytes(buf[:11]) != HEADER[:11]:
        raise StoreCorrupt("not a PostgreSQL binary COPY stream")
    if bytes(buf[15:19]) != b"\x00\x00\x00\x00":
        raise StoreCorrupt("binary COPY stream has a header extension we do not understand")
    return True


def _parse(buf: bytearray, acc: _Accumulator, width: int):
    """Move every complete row of ``buf`` into ``acc`` (yielding full batches); return (consumed, at_end)."""
    view = memoryview(buf)
    end = len(buf)
    pos = 0
    unpack = _LEN.unpack_from
    try:
        while True:
            if end - pos < 2:
                return pos, False
            if _FIELDS.unpack_from(view, pos)[0] == -1:
                return pos + 2, True
            p = pos + width
            strings = []
            for _ in range(3):
                if p + 4 > end:
                    break
                (size,) = unpack(view, p)
                if size < 0:
                    raise StoreCorrupt("COPY stream has a NULL where a value is required")
                p += 4
                if p + size > end:
                    break
                strings.append(str(view[p:p + size], "utf-8"))
                p += size
            if len(strings) < 3:
                return pos, False
            i = acc.n
            acc.raw[i * width:(i + 1) * width] = view[pos:pos + width]
            acc.ids.append(strings[0])
            acc.meta.append(strings[1])
            acc.src.append(strings[2])
            acc.n = i + 1
            pos = p
            if acc.n == acc.size:
                yield acc.batch()
    finally:
        view.release()
