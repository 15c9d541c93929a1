"""Download S3 objects with ranged GETs into partial files that survive a kill, checking S3's checksums.

Each object is fetched in the parts it was uploaded in (its ``procos-part-size`` metadata, or the
size of part 1 for multipart objects written by other tools), ``concurrency`` ranged GETs at a time,
each streamed in 1 MiB chunks straight to its offset in the file (memory: about ``concurrency`` MiB).
Every GET carries ``If-Match: <ETag>``, so an object replaced during the pull is noticed. The
sha256 of each part is computed as it arrives; when an object is complete, the checksum S3 reports
(plain or composite) is compared with the one rebuilt from those digests.

:class:`PullState` (``state.json`` next to the partial files) records which parts are on disk. A
pull run again continues from it: those parts are not fetched again, but they are read back and
hashed, so the object's checksum is checked over the bytes actually on disk.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import TransportError, os_error

from . import s3sums
from .client import error_code, retrying

CHUNK = s3sums.MiB


@dataclass
class RemoteObject:
    """One object to fetch: where it goes, and what S3 said about it."""

    key: str
    rel: str  # the state's name for it (bundle-relative path, or the file name)
    target: Path
    size: int
    etag: str
    checksum: str | None
    multipart: bool
    part_size: int
    digests: dict[int, bytes] = field(default_factory=dict)

    @property
    def ranges(self) -> list[tuple[int, int]]:
        return s3sums.part_ranges(self.size, self.part_size)


class PullState:
    """``{"source", "objects": {rel: {"etag", "size", "done": [part numbers]}}}`` kept in ``state.json``."""

    def __init__(self, path: Path, source: str) -> None:
        self.path = path
        self._lock = threading.Lock()
        doc: dict[str, Any] = {}
        if path.is_file():
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                doc = {}
        self.objects: dict[str, dict[str, Any]] = doc.get("objects", {}) if doc.get("source") == source else {}
        self.source = source

    def done(self, obj: RemoteObject) -> set[int]:
        """Parts of ``obj`` already on disk (none when the object changed since they were fetched)."""
        entry = self.objects.get(obj.rel)
        if not entry or entry.get("etag") != obj.etag or entry.get("size") != obj.size:
            self.objects[obj.rel] = {"etag": obj.etag, "size": obj.size, "done": []}
            return set()
        return set(entry.get("done", []))

    def mark(self, obj: RemoteObject, number: int | None) -> None:
        """Record part ``number`` of ``obj`` as on disk (None: forget every part) and save the state."""
        with self._lock:
            entry = self.objects.setdefault(obj.rel, {"etag": obj.etag, "size": obj.size, "done": []})
            entry["done"] = [] if number is None else sorted({*entry["done"], number})
            tmp = self.path.with_name(self.path.name + ".tmp")
            tmp.write_text(json.dumps({"source": self.source, "objects": self.objects}, sort_keys=True),
                           encoding="utf-8")
            os.replace(tmp, self.path)


def describe_object(client: Any, bucket: str, key: str, rel: str, target: Path) -> RemoteObject:
    """Read what S3 holds at ``key`` (size, ETag, checksum, part layout)."""
    head = retrying(lambda: client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED"),
                    what=f"reading s3://{bucket}/{key}")
    size = int(head["ContentLength"])
    etag = str(head["ETag"])
    multipart = "-" in etag
    part_size = int((head.get("Metadata") or {}).get(s3sums.META_PART_SIZE) or 0)
    if multipart and not part_size:  # written by another tool: its parts are as large as part 1
        first = retrying(lambda: client.head_object(Bucket=bucket, Key=key, PartNumber=1),
                         what=f"reading part 1 of s3://{bucket}/{key}")
        part_size = int(first["ContentLength"])
    if not multipart:
        part_size = max(size, 1)
    return RemoteObject(key, rel, target, size, etag, head.get("ChecksumSHA256"), multipart, part_size)


class Downloader:
    """Fetches the objects of one pull from ``bucket``; counts bytes received and skipped."""

    def __init__(self, client: Any, bucket: str, state: PullState, concurrency: int = 8) -> None:
        self.client = client
        self.bucket = bucket
        self.state = state
        self.concurrency = concurrency
        self._lock = threading.Lock()
        self.bytes_received = 0
        self.bytes_skipped = 0

    def fetch(self, objects: list[RemoteObject]) -> list[str]:
        """Fetch and check every object; return a problem per object that is not complete and checked."""
        problems: dict[str, str] = {}
        retry = [o for o in self._round(objects, problems) if o.rel not in problems]
        if retry:  # a checksum mismatch: fetch those objects once more from scratch
            for obj in retry:
                self.state.mark(obj, None)
            again = self._round(retry, problems)
            for obj in again:
                problems[obj.rel] = (f"s3://{self.bucket}/{obj.key}: the downloaded bytes do not match the "
                                     f"checksum S3 reports ({obj.checksum}), twice")
        return [problems[rel] for rel in sorted(problems)]

    def _round(self, objects: list[RemoteObject], problems: dict[str, str]) -> list[RemoteObject]:
        """Fetch the missing parts of ``objects``; return those whose checksum does not match."""
        tasks = []
        for obj in objects:
            obj.target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(obj.target, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                if os.fstat(fd).st_size != obj.size:
                    os.ftruncate(fd, obj.size)
            finally:
                os.close(fd)
            done = self.state.done(obj)
            for number, (offset, length) in enumerate(obj.ranges, start=1):
                if number in done:
                    self._count(skipped=length)
                else:
                    tasks.append((obj, number, offset, length))
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="pull") as pool:
            futures = {pool.submit(self._fetch_part, *task): task[0] for task in tasks}
            for future, obj in futures.items():
                try:
                    future.result()
                except TransportError as exc:
                    problems.setdefault(obj.rel, exc.message)
        return [obj for obj in objects if obj.rel not in problems and not self._checked(obj)]

    def _fetch_part(self, obj: RemoteObject, number: int, offset: int, length: int) -> None:
        if length == 0:
            obj.digests[number] = hashlib.sha256(b"").digest()
            self.state.mark(obj, number)
            return
        sha = hashlib.sha256()
        written = [0]  # a retry continues from the byte where the last attempt stopped
        fd = os.open(obj.target, os.O_WRONLY)
        try:
            retrying(lambda: self._get_range(obj, fd, offset, length, sha, written), progress=lambda: written[0],
                     what=f"downloading part {number} of s3://{self.bucket}/{obj.key}")
        finally:
            os.close(fd)
        obj.digests[number] = sha.digest()
        self.state.mark(obj, number)
        self._count(received=length)

    def _get_range(self, obj: RemoteObject, fd: int, offset: int, length: int, sha: Any, written: list[int]) -> None:
        """GET bytes ``offset + written[0]`` .. ``offset + length - 1`` into the file, hashing them in order."""
        from botocore.exceptions import ClientError

        start = offset + written[0]
        try:
            reply = self.client.get_object(Bucket=self.bucket, Key=obj.key, IfMatch=obj.etag,
                                           Range=f"bytes={start}-{offset + length - 1}")
        except ClientError as exc:
            if error_code(exc) in ("PreconditionFailed", "412"):
                raise TransportError(f"s3://{self.bucket}/{obj.key} changed while it was being pulled",
                                     hint="run the pull again to fetch the new object") from exc
            raise
        body = reply["Body"]
        try:
            while written[0] < length:
                chunk = body.read(min(CHUNK, length - written[0]))
                if not chunk:
                    raise ConnectionError(f"the response ended {length - written[0]} bytes early")
                try:
                    os.pwrite(fd, chunk, offset + written[0])
                except OSError as exc:  # the local disk, not the network: a full disk is DiskFull, not retried
                    raise os_error(exc, f"write the download {obj.target}", obj.target.parent) from None
                sha.update(chunk)
                written[0] += len(chunk)
        finally:
            body.close()

    def _checked(self, obj: RemoteObject) -> bool:
        """Whether the object on disk matches S3's checksum (parts from earlier runs are read back)."""
        fd = os.open(obj.target, os.O_RDONLY)
        try:
            digests = [obj.digests.get(n) or s3sums.digest_range(fd, off, length)[0]
                       for n, (off, length) in enumerate(obj.ranges, start=1)]
        finally:
            os.close(fd)
        obj.digests.clear()
        if obj.checksum is None:
            return True  # the server keeps no checksum for it: the bundle's own checksums decide
        return s3sums.same(obj.checksum, s3sums.object_checksum(digests, obj.multipart))

    def _count(self, received: int = 0, skipped: int = 0) -> None:
        with self._lock:
            self.bytes_received += received
            self.bytes_skipped += skipped
