"""The byte-level checks of a ``.tar.zst``: exactly one complete zstd frame, and nothing after the tar's end.

A bundle archive is one zstd frame holding one tar stream. Anything else is a changed file and
is refused with :class:`~engine.errors.ArchiveDamaged` naming the archive:

- bytes after the zstd frame (appended data, a second concatenated frame), or a frame cut short:
  found by walking the frame's block headers (:func:`frame_end`), a few bytes read per 128 KiB block;
- bytes after the tar's end-of-archive marker other than the zero padding tar writes (at most
  :data:`MAX_PADDING`): found by :class:`TailReader` and :func:`check_tar_end`, which keep only the
  last few reads, so memory stays bounded whatever the archive's size.
"""

from __future__ import annotations

import collections
import os
from pathlib import Path
from typing import BinaryIO

from engine.errors import ArchiveDamaged

MAGIC = b"\x28\xb5\x2f\xfd"
MAX_PADDING = 1 << 20  # tar pads to its record size (10 KiB by default); allow far more, refuse beyond
KEEP = 4 << 20  # bytes of the decompressed stream kept behind the reader for the end check
HINT = "the archive was changed or damaged after it was packed; pack the bundle again or use another copy"


def _damaged(archive: Path, problem: str) -> ArchiveDamaged:
    return ArchiveDamaged(f"{archive.name}: {problem}", hint=HINT, path=archive.name, problem=problem)


def frame_end(fh: BinaryIO, archive: Path) -> int:
    """The offset just past the zstd frame that starts ``fh``; raise ArchiveDamaged when it is not one
    complete frame."""
    fh.seek(0)
    head = fh.read(6)
    if len(head) < 5 or head[:4] != MAGIC:
        raise _damaged(archive, "is not a zstd archive (no zstd frame at its start)")
    descriptor = head[4]
    if descriptor & 0x08:
        raise _damaged(archive, "its zstd frame header is invalid (reserved bit set)")
    fcs_flag, single, checksum, did_flag = descriptor >> 6, (descriptor >> 5) & 1, (descriptor >> 2) & 1, \
        descriptor & 3
    fcs_size = (1 if single else 0, 2, 4, 8)[fcs_flag]
    header = 5 + (0 if single else 1) + (0, 1, 2, 4)[did_flag] + fcs_size
    size = os.fstat(fh.fileno()).st_size
    pos = header
    while True:
        fh.seek(pos)
        block = fh.read(3)
        if len(block) < 3:
            raise _damaged(archive, f"its zstd frame is cut short at byte {size} (truncated)")
        value = int.from_bytes(block, "little")
        last, kind, length = value & 1, (value >> 1) & 3, value >> 3
        if kind == 3:
            raise _damaged(archive, f"its zstd frame has an invalid block at byte {pos}")
        pos += 3 + (1 if kind == 1 else length)
        if pos > size:
            raise _damaged(archive, f"its zstd frame is cut short at byte {size} (truncated)")
        if last:
            break
    pos += 4 if checksum else 0
    if pos > size:
        raise _damaged(archive, f"its zstd frame is cut short at byte {size} (truncated)")
    return pos


def check_single_frame(fh: BinaryIO, archive: Path) -> None:
    """Raise ArchiveDamaged unless ``fh`` is exactly one complete zstd frame."""
    end = frame_end(fh, archive)
    size = os.fstat(fh.fileno()).st_size
    fh.seek(0)
    if end != size:
        raise _damaged(archive, f"holds {size - end} byte(s) after the end of its zstd frame "
                                "(appended data or a second frame)")


class TailReader:
    """A read-only file object over ``source`` that remembers how much it gave out and its last bytes."""

    def __init__(self, source: BinaryIO) -> None:
        self._source = source
        self._chunks: collections.deque[bytes] = collections.deque()
        self._kept = 0
        self.total = 0

    def read(self, size: int = -1) -> bytes:
        data = self._source.read(size)
        if data:
            self.total += len(data)
            self._chunks.append(data)
            self._kept += len(data)
            while self._kept - len(self._chunks[0]) >= KEEP:
                self._kept -= len(self._chunks.popleft())
        return data

    def since(self, offset: int) -> bytes | None:
        """The bytes given out from ``offset`` on, or None when they are no longer kept."""
        start = self.total - self._kept
        if offset < start:
            return None
        return b"".join(self._chunks)[offset - start:]

    def readable(self) -> bool:
        return True


def check_tar_end(reader: TailReader, end_offset: int, archive: Path) -> None:
    """After the tar's last member: only zero padding (at most MAX_PADDING bytes) may follow ``end_offset``."""
    seen = reader.since(end_offset)
    if seen is None:
        raise _damaged(archive, f"holds data after its tar end-of-archive marker (byte {end_offset})")
    extra = len(seen)
    nonzero = seen.strip(b"\x00") != b""
    while not nonzero and extra <= MAX_PADDING:
        chunk = reader.read(1 << 16)
        if not chunk:
            break
        extra += len(chunk)
        nonzero = chunk.strip(b"\x00") != b""
    if nonzero or extra > MAX_PADDING:
        raise _damaged(archive, f"holds data after its tar end-of-archive marker (byte {end_offset} of the "
                                "unpacked stream): a damaged member header or appended content")
