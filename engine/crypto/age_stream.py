"""Streaming age v1 files: :class:`AgeWriter` encrypts, :class:`AgeReader` decrypts, one 64 KiB chunk at a time.

The payload after the header is a 16-byte nonce, then the plaintext in 64 KiB chunks, each sealed
with ChaCha20-Poly1305 under HKDF(file key, nonce, "payload") and the nonce ``counter (11 bytes,
big endian) || last-chunk flag``. Memory is bounded by one chunk. A reader hands out a chunk's bytes
only after that chunk authenticated; a file whose last chunk is missing (truncated), that goes on
after its last chunk (bytes appended), or that has any byte changed fails with
:class:`~engine.errors.DecryptionFailed` naming the file. Call :meth:`AgeReader.drain` after the
consumer stopped reading, so that the end of the file is authenticated too.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterable
from typing import BinaryIO

from engine.errors import DecryptionFailed

from .age import (
    DEFAULT_WORK_FACTOR,
    header_mac,
    hkdf,
    read_header,
    unwrap_file_key,
    write_header,
)
from .keys import AgeError, AgeKeys

CHUNK = 64 * 1024
TAG = 16
NONCE = 16
HINT = ("check the key (--identity FILE, PROCOS_AGE_IDENTITY) or the passphrase (--passphrase-file F); "
        "a damaged file cannot be repaired: encrypt the bundle again")


def _nonce(counter: int, last: bool) -> bytes:
    return counter.to_bytes(11, "big") + (b"\x01" if last else b"\x00")


def _aead(key: bytes):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    return ChaCha20Poly1305(key)


class AgeWriter(io.RawIOBase):
    """A writable stream that encrypts into ``out``: header and nonce at once, then chunk by chunk.

    Call :meth:`finish` after the last write (it seals the final chunk); without it the output is
    an incomplete file that every reader refuses. ``out`` is never closed here.
    """

    def __init__(self, out: BinaryIO, recipients: Iterable[bytes] = (), passphrase: bytes | None = None,
                 work_factor: int = DEFAULT_WORK_FACTOR) -> None:
        super().__init__()
        file_key = os.urandom(16)
        nonce = os.urandom(NONCE)
        out.write(write_header(file_key, recipients, passphrase, work_factor) + nonce)
        self._out = out
        self._aead = _aead(hkdf(file_key, nonce, b"payload"))
        self._buf = bytearray()
        self._counter = 0
        self._finished = False

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[override]
        if self._finished:
            raise ValueError("write after finish()")
        self._buf += data
        view = memoryview(self._buf)
        start = 0
        while len(self._buf) - start > CHUNK:  # keep at least one byte: the last chunk must not be empty
            self._seal(view[start:start + CHUNK], last=False)
            start += CHUNK
        view.release()
        del self._buf[:start]
        return len(data)

    def _seal(self, plaintext, last: bool) -> None:
        self._out.write(self._aead.encrypt(_nonce(self._counter, last), bytes(plaintext), None))
        self._counter += 1

    def finish(self) -> None:
        """Seal the final chunk (empty only when nothing was written at all)."""
        if not self._finished:
            self._seal(self._buf, last=True)
            self._buf = bytearray()
            self._finished = True


class AgeReader(io.RawIOBase):
    """A readable stream of the plaintext of the age file ``src`` (positioned at its start).

    The header is read, the file key unwrapped with ``keys`` and the header MAC checked when the
    reader is created, so a wrong key fails before anything is read. ``name`` is the file's name in
    messages.
    """

    def __init__(self, src: BinaryIO, keys: AgeKeys, name: object) -> None:
        super().__init__()
        self._src = src
        self.name_for_errors = str(name)
        try:
            stanzas, head, mac = read_header(src)
            file_key = unwrap_file_key(stanzas, keys)
        except AgeError as exc:
            raise self._error(str(exc)) from None
        if not _equal(header_mac(file_key, head), mac):
            raise self._error("the header MAC does not match: the header was changed or damaged")
        nonce = self._read(NONCE)
        if len(nonce) < NONCE:
            raise self._error("the file ends inside the payload nonce (truncated)")
        self._aead = _aead(hkdf(file_key, nonce, b"payload"))
        self._counter = 0
        self._pending = b""
        self._plain = memoryview(b"")
        self._done = False

    def _error(self, problem: str) -> DecryptionFailed:
        return DecryptionFailed(f"cannot decrypt {self.name_for_errors}: {problem}; nothing was written",
                                [{"path": self.name_for_errors, "problem": problem}], hint=HINT)

    def _read(self, size: int) -> bytes:
        parts: list[bytes] = []
        while size:
            part = self._src.read(size)
            if not part:
                break
            parts.append(part)
            size -= len(part)
        return b"".join(parts)

    def _next_chunk(self) -> None:
        from cryptography.exceptions import InvalidTag

        sealed = self._pending + self._read(CHUNK + TAG - len(self._pending))
        self._pending = b""
        last = True
        if len(sealed) == CHUNK + TAG:
            self._pending = self._read(1)
            last = not self._pending
        if len(sealed) < TAG:
            raise self._error(f"the payload ends inside chunk {self._counter} (truncated)")
        try:
            plain = self._aead.decrypt(_nonce(self._counter, last), sealed, None)
        except InvalidTag:
            raise self._error(f"chunk {self._counter} of the payload does not authenticate (the file is "
                              "damaged, truncated or has bytes appended)") from None
        if last and not plain and self._counter:
            raise self._error("the payload ends with an empty chunk")
        self._counter += 1
        self._done = last
        self._plain = memoryview(plain)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # type: ignore[override]
        while not self._plain and not self._done:
            self._next_chunk()
        n = min(len(buffer), len(self._plain))
        buffer[:n] = self._plain[:n]
        self._plain = self._plain[n:]
        return n

    def drain(self) -> int:
        """Read and authenticate the rest of the file up to its final chunk; return how many bytes were left."""
        left = len(self._plain)
        self._plain = memoryview(b"")
        while not self._done:
            self._next_chunk()
            left += len(self._plain)
            self._plain = memoryview(b"")
        return left


def _equal(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)
