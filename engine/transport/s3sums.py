"""S3 additional checksums (SHA-256) and part layout, as S3 defines them.

A single-part object's ``ChecksumSHA256`` is the base64 of the file's sha256. A multipart object's
is *composite*: base64 of the sha256 of the concatenated binary digests of its parts, followed by
``-<number of parts>`` (some servers leave the suffix out). Every object procos uploads records its
part size in the user metadata ``procos-part-size`` (and, for files of a bundle folder, the file's
sha256 in ``procos-sha256``), so a reader can rebuild the composite from the bytes it downloads.
"""

from __future__ import annotations

import base64
import hashlib
import os
from pathlib import Path

MiB = 1 << 20
MIN_PART = 5 * MiB  # S3's minimum for every part but the last
MAX_PART = 5 * 1024 * MiB
MAX_PARTS = 10_000
META_PART_SIZE = "procos-part-size"
META_SHA256 = "procos-sha256"
READ_CHUNK = MiB


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode("ascii")


def object_checksum(digests: list[bytes], multipart: bool) -> str:
    """The ``ChecksumSHA256`` of an object of these part digests: plain for a PutObject, else composite."""
    if multipart:
        return b64(hashlib.sha256(b"".join(digests)).digest())
    return b64(digests[0])


def same(reported: str | None, wanted: str) -> bool:
    """Whether the server's ``ChecksumSHA256`` equals ``wanted`` (a ``-N`` part-count suffix is ignored)."""
    if not reported:
        return False
    return reported.split("-", 1)[0] == wanted


def part_size_for(size: int, requested: int) -> int:
    """``requested`` bytes, raised when needed so that ``size`` fits in S3's 10,000 parts."""
    part = max(MIN_PART, requested)
    while -(-size // part) > MAX_PARTS:
        part *= 2
    if part > MAX_PART:
        raise ValueError(f"a file of {size} bytes does not fit in {MAX_PARTS} parts of at most 5 GiB")
    return part


def part_ranges(size: int, part_size: int) -> list[tuple[int, int]]:
    """``[(offset, length)]`` of the parts of a ``size``-byte object (one empty part for an empty file)."""
    if size == 0:
        return [(0, 0)]
    return [(off, min(part_size, size - off)) for off in range(0, size, part_size)]


def digest_range(fd: int, offset: int, length: int, *, md5: bool = False) -> tuple[bytes, str | None]:
    """sha256 digest (and md5 hex when asked) of ``length`` bytes of open file ``fd`` at ``offset``."""
    sha = hashlib.sha256()
    md = hashlib.md5(usedforsecurity=False) if md5 else None
    done = 0
    while done < length:
        chunk = os.pread(fd, min(READ_CHUNK, length - done), offset + done)
        if not chunk:
            raise OSError(f"the file ended {length - done} bytes early")
        sha.update(chunk)
        if md is not None:
            md.update(chunk)
        done += len(chunk)
    return sha.digest(), (md.hexdigest() if md is not None else None)


def file_digests(path: Path, part_size: int) -> list[bytes]:
    """The sha256 digests of each part of a local file, read one chunk at a time."""
    fd = os.open(path, os.O_RDONLY)
    try:
        size = os.fstat(fd).st_size
        return [digest_range(fd, off, length)[0] for off, length in part_ranges(size, part_size)]
    finally:
        os.close(fd)
