"""Parse the header of a FAISS index file without loading it: type, dimensions, rows, metric, HNSW settings.

Verification must not read a multi-gigabyte ``index.faiss`` into memory just to learn ``ntotal`` and
``d`` (its bytes are hashed, streamed, by the checksum phase). This module reads the few header
fields of the two index types a bundle may carry, seeking over the bulk arrays, and checks that the
declared array sizes add up to exactly the file's size:

- ``IxF2`` / ``IxFI`` (``IndexFlat`` L2 / inner product): header, then ``ntotal * d`` float32 codes;
- ``IHNf`` (``IndexHNSWFlat``): header, the HNSW graph (``assign_probas``, ``cum_nneighbor_per_level``,
  ``levels``, ``offsets``, ``neighbors``, entry point, max level, efConstruction, efSearch, a legacy
  field), then its flat storage index as above.

Layouts follow ``faiss/impl/index_write.cpp`` (``write_index_header``, ``write_HNSW``,
``WRITEVECTOR``/``WRITEXBVECTOR``), little-endian as FAISS writes on every platform we run on.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

FLAT = {b"IxF2": "l2", b"IxFI": "inner_product"}
HNSW_FLAT = b"IHNf"
METRICS = {0: "inner_product", 1: "l2"}
_HEADER = struct.Struct("<iqqq?i")  # d, ntotal, dummy, dummy, is_trained, metric_type
MAX_ELEMENTS = 1 << 40  # any larger declared array is damage, not data


class HeaderError(ValueError):
    """The bytes are not a FAISS index this module understands, or its sizes do not add up."""


@dataclass(frozen=True)
class IndexHeader:
    """What the header of an index file says."""

    kind: str  # "flat" | "hnsw"
    dimensions: int
    ntotal: int
    metric: str  # "l2" | "inner_product"
    m: int | None = None
    ef_construction: int | None = None
    ef_search: int | None = None


class _Reader:
    def __init__(self, fh: BinaryIO, size: int) -> None:
        self.fh = fh
        self.size = size

    def take(self, n: int) -> bytes:
        data = self.fh.read(n)
        if len(data) != n:
            raise HeaderError(f"the file ends at byte {self.fh.tell()}, inside a field of {n} bytes")
        return data

    def unpack(self, fmt: str) -> tuple:
        s = struct.Struct(fmt)
        return s.unpack(self.take(s.size))

    def vector(self, item: int, what: str, read: bool = False) -> tuple[int, bytes | None]:
        """A FAISS ``WRITEVECTOR``: a uint64 element count, then the elements; skipped unless ``read``."""
        (n,) = self.unpack("<Q")
        if n > MAX_ELEMENTS or self.fh.tell() + n * item > self.size:
            raise HeaderError(f"{what} declares {n} elements, more than the file holds")
        if read:
            return n, self.take(n * item)
        self.fh.seek(n * item, os.SEEK_CUR)
        return n, None


def _index_header(r: _Reader) -> tuple[int, int, str]:
    d, ntotal, _, _, _, metric_type = r.unpack(_HEADER.format)
    if metric_type not in METRICS:
        raise HeaderError(f"metric type {metric_type} is neither L2 nor inner product")
    if d < 0 or ntotal < 0:
        raise HeaderError(f"negative dimensions ({d}) or row count ({ntotal})")
    return d, ntotal, METRICS[metric_type]


def _flat(r: _Reader, fourcc: bytes) -> IndexHeader:
    d, ntotal, metric = _index_header(r)
    if FLAT[fourcc] != metric:
        raise HeaderError(f"index type {fourcc.decode()} with metric {metric}")
    (floats,) = r.unpack("<Q")
    if floats != d * ntotal:
        raise HeaderError(f"the flat index declares {floats} codes, not ntotal x d = {ntotal} x {d}")
    end = r.fh.tell() + 4 * floats
    if end > r.size:
        raise HeaderError(f"the flat index needs {end} bytes, the file has {r.size}")
    r.fh.seek(end)
    return IndexHeader("flat", d, ntotal, metric)


def _hnsw(r: _Reader) -> IndexHeader:
    d, ntotal, metric = _index_header(r)
    r.vector(8, "assign_probas")
    levels_n, cum = r.vector(4, "cum_nneighbor_per_level", read=True)
    nodes, _ = r.vector(4, "levels")
    offsets, _ = r.vector(8, "offsets")
    r.vector(4, "neighbors")
    _entry, _max_level, ef_construction, ef_search, _legacy = r.unpack("<iiiii")
    if nodes != ntotal or offsets != ntotal + 1:
        raise HeaderError(f"the HNSW graph has {nodes} nodes and {offsets} offsets for ntotal={ntotal}")
    per_level = struct.unpack(f"<{levels_n}i", cum or b"")
    m = (per_level[2] - per_level[1]) if levels_n > 2 else None  # level 0 has 2m neighbours, the others m
    fourcc = r.take(4)
    if fourcc not in FLAT:
        raise HeaderError(f"the HNSW storage is a {fourcc!r} index, not a flat one")
    storage = _flat(r, fourcc)
    if (storage.dimensions, storage.ntotal, storage.metric) != (d, ntotal, metric):
        raise HeaderError("the HNSW storage does not match the graph's dimensions, rows or metric")
    return IndexHeader("hnsw", d, ntotal, metric, m, ef_construction, ef_search)


def read_header(path: Path) -> IndexHeader:
    """The header of the FAISS index file at ``path``; HeaderError when it is not one this tool writes
    or reads, or when its declared sizes do not add up to exactly the file's size."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        r = _Reader(fh, size)
        fourcc = r.take(4)
        if fourcc in FLAT:
            header = _flat(r, fourcc)
        elif fourcc == HNSW_FLAT:
            header = _hnsw(r)
        else:
            raise HeaderError(f"unknown index type {fourcc!r} (a bundle holds IndexFlat or IndexHNSWFlat)")
        if fh.tell() != size:
            raise HeaderError(f"{size - fh.tell()} bytes follow the end of the index")
    return header
