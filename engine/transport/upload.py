"""Upload files as S3 objects with SHA-256 checksums, in bounded memory, resuming what is already there.

One :class:`Uploader` serves one push. Files up to the part size go up with one PutObject; larger
ones as multipart uploads. The calling thread reads each part once (``pread``), feeds it to the
file's running sha256 and hands it to a pool of ``concurrency`` threads, which hash the part
itself (its S3 checksum) and send it; a semaphore of ``concurrency`` slots is taken before a part is read and given back when it
is sent, so at most ``concurrency`` parts (``concurrency x part size`` bytes) are in memory,
whatever the file sizes. Every part carries ``x-amz-checksum-sha256``, so S3 refuses damaged bytes.

Resume: an object already present is kept when its size and the checksum S3 reports match the local
file; an unfinished multipart upload of the same key whose parts fit the part size is continued,
and each listed part whose checksum (or, on servers that list none, its MD5 ETag) matches the local
bytes is not sent again. Before a multipart upload is completed the file's sha256 is compared with
the one the bundle lists; after it is completed, the checksum S3 reports is compared with the one
computed locally. Only then is a file done.
"""

from __future__ import annotations

import hashlib
import os
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from engine.errors import TransportError

from . import s3sums
from .client import error_code, failure, retrying
from .unfinished import part_matches, resumable, uploads_of

MiB = s3sums.MiB


@dataclass(frozen=True)
class PushOptions:
    """How objects are written: part size and concurrency, encryption, storage class, Object Lock retention."""

    part_size: int = 16 * MiB
    concurrency: int = 8
    sse: str | None = None  # "aes256" | "kms"
    kms_key_id: str | None = None
    storage_class: str | None = None
    retain_until: datetime | None = None
    retention_mode: str = "governance"  # "governance" | "compliance"

    def object_args(self) -> dict[str, Any]:
        """Arguments of PutObject / CreateMultipartUpload for these options."""
        args: dict[str, Any] = {}
        if self.sse == "aes256":
            args["ServerSideEncryption"] = "AES256"
        elif self.sse == "kms":
            args["ServerSideEncryption"] = "aws:kms"
            if self.kms_key_id:
                args["SSEKMSKeyId"] = self.kms_key_id
        if self.storage_class:
            args["StorageClass"] = self.storage_class
        if self.retain_until is not None:
            args["ObjectLockMode"] = self.retention_mode.upper()
            args["ObjectLockRetainUntilDate"] = self.retain_until
        return args


@dataclass
class Pending:
    """A multipart upload whose parts are being sent; :meth:`Uploader.finish` completes and checks it."""

    key: str
    path: Path
    size: int
    upload_id: str
    etags: dict[int, str]
    digests: list[bytes]
    futures: list[Future] = field(default_factory=list)
    problem: str | None = None


class Uploader:
    """Puts the files of one push into ``bucket``; counts bytes sent and skipped."""

    def __init__(self, client: Any, bucket: str, options: PushOptions) -> None:
        self.client = client
        self.bucket = bucket
        self.options = options
        self.pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="push")
        self.slots = threading.BoundedSemaphore(options.concurrency)
        self._lock = threading.Lock()
        self.bytes_sent = 0
        self.bytes_skipped = 0

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)

    def count(self, sent: int = 0, skipped: int = 0) -> None:
        with self._lock:
            self.bytes_sent += sent
            self.bytes_skipped += skipped

    def url(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"

    # --- one file ----------------------------------------------------------------------------------

    def start(self, path: Path, key: str, *, sha256: str | None, present: bool,
              metadata: dict[str, str] | None = None) -> Pending | Future | None:
        """Begin uploading ``path`` to ``key``: None when the object is already there and checked,
        a Future for a single PutObject, or a Pending multipart upload (finish it with :meth:`finish`)."""
        size = path.stat().st_size
        if present and self.already_there(path, key, size, sha256):
            self.count(skipped=size)
            return None
        part_size = s3sums.part_size_for(size, self.options.part_size)
        meta = {s3sums.META_PART_SIZE: str(part_size), **(metadata or {})}
        if sha256:
            meta[s3sums.META_SHA256] = sha256
        if size <= part_size:
            self.slots.acquire()
            return self.pool.submit(self._put_small, path, key, size, sha256, meta)
        return self._multipart(path, key, size, part_size, sha256, meta)

    def already_there(self, path: Path, key: str, size: int, sha256: str | None) -> bool:
        """Whether ``key`` holds exactly the bytes of ``path`` (size, and the checksum S3 reports)."""
        head = self.head(key)
        if head is None or head.get("ContentLength") != size:
            return False
        meta = head.get("Metadata") or {}
        if sha256 and meta.get(s3sums.META_SHA256) not in (None, sha256):
            return False
        multipart = "-" in str(head.get("ETag", ""))
        part_size = int(meta.get(s3sums.META_PART_SIZE) or 0) or max(size, 1)
        want = s3sums.object_checksum(s3sums.file_digests(path, part_size), multipart)
        if not s3sums.same(head.get("ChecksumSHA256"), want):
            return False
        self.keep_retained(key, head)
        return True

    def head(self, key: str) -> dict[str, Any] | None:
        def call() -> dict[str, Any] | None:
            from botocore.exceptions import ClientError

            try:
                return self.client.head_object(Bucket=self.bucket, Key=key, ChecksumMode="ENABLED")
            except ClientError as exc:
                if error_code(exc) in ("404", "NoSuchKey", "NotFound"):
                    return None
                raise

        return retrying(call, what=f"reading {self.url(key)}")

    def _put_small(self, path: Path, key: str, size: int, sha256: str | None, meta: dict[str, str]) -> None:
        try:
            digest = self._put_bytes(path, key, sha256, meta)
            self.count(sent=size)
        finally:
            self.slots.release()
        self.check_stored(key, size, s3sums.b64(digest))

    def _put_bytes(self, path: Path, key: str, sha256: str | None, meta: dict[str, str]) -> bytes:
        """Read a small file, check it against the bundle's sha256 and PutObject it; return its digest."""
        data = path.read_bytes()
        digest = hashlib.sha256(data).digest()
        self._check_file(path, digest.hex(), sha256)
        meta = {**meta, s3sums.META_SHA256: digest.hex()}
        retrying(lambda: self.client.put_object(
            Bucket=self.bucket, Key=key, Body=data, ContentLength=len(data), ChecksumAlgorithm="SHA256",
            ChecksumSHA256=s3sums.b64(digest), Metadata=meta, **self.options.object_args()),
            what=f"uploading {path.name} to {self.url(key)}")
        return digest

    def _check_file(self, path: Path, actual: str, sha256: str | None) -> None:
        if sha256 and actual != sha256:
            raise TransportError(f"{path} has sha256 {actual} but the bundle's checksums.sha256 lists {sha256}; "
                                 "it was not uploaded", hint="verify the bundle (procos snapshot verify); "
                                 "export it again if it is damaged")

    def check_stored(self, key: str, size: int, want: str) -> None:
        """Compare what S3 reports for ``key`` (size, ChecksumSHA256) with what was computed locally."""
        head = self.head(key)
        if head is None:
            raise TransportError(f"{self.url(key)} is missing right after it was uploaded",
                                 hint="run the same command again")
        if head.get("ContentLength") != size or not s3sums.same(head.get("ChecksumSHA256"), want):
            raise TransportError(f"{self.url(key)} holds other bytes than were sent (S3 reports "
                                 f"{head.get('ContentLength')} bytes, checksum {head.get('ChecksumSHA256')}; "
                                 f"sent {size} bytes, checksum {want})", hint="run the same command again")
        self.keep_retained(key, head)

    def keep_retained(self, key: str, head: dict[str, Any]) -> None:
        """Give an object the requested Object Lock retention when it has none or an earlier date."""
        until = self.options.retain_until
        current = head.get("ObjectLockRetainUntilDate")
        if until is None or (current is not None and current >= until):
            return
        retention = {"Mode": self.options.retention_mode.upper(), "RetainUntilDate": until}
        version = {"VersionId": head["VersionId"]} if head.get("VersionId") else {}
        retrying(lambda: self.client.put_object_retention(Bucket=self.bucket, Key=key, Retention=retention,
                                                          **version),
                 what=f"setting Object Lock retention on {self.url(key)}")

    # --- multipart -------------------------------------------------------------------------------

    def _multipart(self, path: Path, key: str, size: int, part_size: int, sha256: str | None,
                   meta: dict[str, str]) -> Pending:
        ranges = s3sums.part_ranges(size, part_size)
        upload_id, listed = resumable(self.client, self.bucket, key, ranges)
        if upload_id is None:
            upload_id = retrying(lambda: self.client.create_multipart_upload(
                Bucket=self.bucket, Key=key, ChecksumAlgorithm="SHA256", Metadata=meta,
                **self.options.object_args())["UploadId"], what=f"starting the upload of {self.url(key)}")
        pending = Pending(key, path, size, upload_id, {}, [b""] * len(ranges))
        whole = hashlib.sha256()
        fd = os.open(path, os.O_RDONLY)
        try:
            for number, (offset, length) in enumerate(ranges, start=1):
                self.slots.acquire()
                try:
                    data = _pread(fd, offset, length)
                except BaseException:
                    self.slots.release()
                    raise
                whole.update(data)
                have = listed.get(number)
                digest = hashlib.sha256(data).digest() if have is not None else None  # else hashed by the sender
                if have is not None and part_matches(have, data, digest):
                    pending.digests[number - 1] = digest
                    pending.etags[number] = have["ETag"]
                    self.slots.release()
                    self.count(skipped=length)
                    continue
                pending.futures.append(self.pool.submit(self._send_part, pending, number, data, digest))
                del data
        finally:
            os.close(fd)
        try:
            self._check_file(path, whole.hexdigest(), sha256)
        except TransportError as exc:
            pending.problem = exc.message
        return pending

    def _send_part(self, pending: Pending, number: int, data: bytes, digest: bytes | None) -> None:
        try:
            if digest is None:
                digest = hashlib.sha256(data).digest()
            pending.digests[number - 1] = digest
            reply = retrying(lambda: self.client.upload_part(
                Bucket=self.bucket, Key=pending.key, UploadId=pending.upload_id, PartNumber=number, Body=data,
                ContentLength=len(data), ChecksumAlgorithm="SHA256", ChecksumSHA256=s3sums.b64(digest)),
                what=f"uploading part {number} of {pending.path.name} to {self.url(pending.key)}")
            reported = reply.get("ChecksumSHA256")
            if reported and not s3sums.same(reported, s3sums.b64(digest)):
                raise TransportError(f"S3 stored part {number} of {self.url(pending.key)} with checksum {reported}, "
                                     f"not the {s3sums.b64(digest)} sent", hint="run the same command again")
            with self._lock:
                pending.etags[number] = reply["ETag"]
            self.count(sent=len(data))
        finally:
            self.slots.release()

    def finish(self, pending: Pending) -> None:
        """Wait for the parts, complete the upload, and check the stored object; raise TransportError if not done."""
        errors = []
        for future in pending.futures:
            try:
                future.result()
            except Exception as exc:  # every failed part is reported, not just the first
                errors.append(exc.message if isinstance(exc, TransportError) else failure(exc, "a part").message)
        if pending.problem:  # the file is not what the bundle lists: its upload must not be continued
            retrying(lambda: self.client.abort_multipart_upload(Bucket=self.bucket, Key=pending.key,
                                                                UploadId=pending.upload_id),
                     what=f"aborting the upload of {self.url(pending.key)}")
            raise TransportError(pending.problem, hint="verify the bundle (procos snapshot verify); export it again "
                                 "if it is damaged")
        if errors:
            raise TransportError(errors[0], hint="run the same command again")
        parts = [{"PartNumber": n, "ETag": pending.etags[n], "ChecksumSHA256": s3sums.b64(d)}
                 for n, d in enumerate(pending.digests, start=1)]
        retrying(lambda: self.client.complete_multipart_upload(
            Bucket=self.bucket, Key=pending.key, UploadId=pending.upload_id, MultipartUpload={"Parts": parts}),
            what=f"completing the upload of {self.url(pending.key)}")
        self.check_stored(pending.key, pending.size, s3sums.object_checksum(pending.digests, True))
        for stale in uploads_of(self.client, self.bucket, pending.key):  # older unfinished uploads: garbage now
            retrying(lambda s=stale: self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=pending.key, UploadId=s["UploadId"]),
                what=f"removing a stale unfinished upload of {self.url(pending.key)}")


def _pread(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) == length:
        return data
    buf = bytearray(data)
    while len(buf) < length:
        chunk = os.pread(fd, length - len(buf), offset + len(buf))
        if not chunk:
            raise TransportError(f"a file ended {length - len(buf)} bytes early while it was being uploaded",
                                 hint="do not change a bundle while it is pushed")
        buf += chunk
    return bytes(buf)
