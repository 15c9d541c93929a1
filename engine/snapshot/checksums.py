"""sha256 while writing, the GNU ``sha256sum`` file format, and the bundle's content hash.

``checksums.sha256`` holds one ``<64 hex>  <relative path>`` line per file of the bundle (sorted by
path, itself excluded), so ``sha256sum -c checksums.sha256`` run inside the bundle checks it. The
*content hash* is the sha256 of the same lines minus ``manifest.json`` and backend-specific files
(``index.faiss``): ``grep -v -e ' manifest.json$' -e ' index.faiss$' checksums.sha256 | sha256sum``.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from . import layout

LINE_RE = re.compile(r"^([0-9a-f]{64})  (.+)$")
CHUNK = 1 << 20


class HashingWriter:
    """A write-only file object that hashes every byte on its way to the real file.

    Hand it to writers that take a file object (``pyarrow.parquet.ParquetWriter``, tarfile, FAISS'
    callback writer); :meth:`finish` flushes, fsyncs and closes the file and returns its sha256 hex
    digest and size, so no second read pass is needed.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fh: BinaryIO = open(path, "xb")  # noqa: SIM115 - closed by finish()/abort()
        self._hash = hashlib.sha256()
        self._size = 0
        self.closed = False

    def write(self, data) -> int:
        view = memoryview(data)
        self._hash.update(view)
        self._fh.write(view)
        self._size += view.nbytes
        return view.nbytes

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._fh.flush()

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readable(self) -> bool:
        return False

    def close(self) -> None:
        """Called by libraries when they are done; the file stays open until :meth:`finish`."""

    def finish(self) -> tuple[str, int]:
        """Flush, fsync and close the file; return ``(sha256 hex, size in bytes)``."""
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        self.closed = True
        return self._hash.hexdigest(), self._size

    def abort(self) -> None:
        """Close the file without fsync (the caller removes the staging folder)."""
        if not self._fh.closed:
            self._fh.close()
        self.closed = True


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> tuple[str, int]:
    """sha256 hex digest and size of a file, streamed in 1 MiB chunks (``on_bytes(n)``: progress)."""
    digest = hashlib.sha256()
    size = reported = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if on_bytes is not None and size - reported >= 64 * CHUNK:
                on_bytes(size - reported)
                reported = size
    if on_bytes is not None and size > reported:
        on_bytes(size - reported)
    return digest.hexdigest(), size


def format_lines(entries: dict[str, str]) -> str:
    """``checksums.sha256`` text for ``{relative path: sha256 hex}``, sorted by path."""
    return "".join(f"{entries[path]}  {path}\n" for path in sorted(entries))


def parse_lines(text: str) -> tuple[dict[str, str], list[tuple[int, str]]]:
    """``({path: sha256}, [(line number, problem)])`` of a checksums.sha256 text."""
    entries: dict[str, str] = {}
    problems: list[tuple[int, str]] = []
    previous = None
    for number, line in enumerate(text.split("\n"), start=1):
        if line == "" and number == len(text.split("\n")):
            break
        match = LINE_RE.match(line)
        if not match:
            problems.append((number, f"line {number} is not '<64 lowercase hex>  <path>': {line[:80]!r}"))
            continue
        digest, path = match.groups()
        if path in entries:
            problems.append((number, f"line {number} lists {path!r} a second time"))
            continue
        if previous is not None and path < previous:
            problems.append((number, f"line {number} ({path!r}) is out of path order"))
        previous = path
        entries[path] = digest
    if text and not text.endswith("\n"):
        problems.append((0, "the file does not end with a newline"))
    return entries, problems


def content_hash(entries: dict[str, str]) -> str:
    """sha256 of the checksum lines of every file except manifest.json and backend-specific files."""
    kept = {p: h for p, h in entries.items() if p != layout.MANIFEST and p not in layout.BACKEND_SPECIFIC}
    return hashlib.sha256(format_lines(kept).encode("utf-8")).hexdigest()
