"""age keys: X25519 recipients (``age1...``), identity files (``AGE-SECRET-KEY-1...``), passphrase files.

Recipients and identities are Bech32 (:mod:`.bech32`); an identity file holds one identity per
line, with ``#`` comments, as ``age-keygen`` writes it. :class:`AgeKeys` holds what can open a file.
No message here repeats a key or a passphrase: errors name the file and the line.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from . import bech32

RECIPIENT_HRP = "age"
IDENTITY_HRP = "age-secret-key-"
MAX_KEY_FILE = 64 << 10


class AgeError(ValueError):
    """An age header, key or passphrase file is unusable; the message says what and where, never a secret."""


@dataclass(frozen=True)
class AgeKeys:
    """What can open an age file: X25519 identities and/or a passphrase. Secrets stay out of ``repr``."""

    identities: tuple[bytes, ...] = field(default=(), repr=False)
    passphrase: bytes | None = field(default=None, repr=False)
    source: str = ""  # where they came from, for messages: "identity file key.txt"

    @classmethod
    def from_files(cls, identity_files: Iterable[str | os.PathLike[str]] = (),
                   passphrase_file: str | os.PathLike[str] | None = None) -> AgeKeys:
        files = [Path(p) for p in identity_files]
        identities = tuple(k for p in files for k in read_identities(p))
        passphrase = read_passphrase(Path(passphrase_file)) if passphrase_file is not None else None
        names = [f"identity file {p}" for p in files]
        if passphrase_file is not None:
            names.append(f"passphrase file {passphrase_file}")
        return cls(identities, passphrase, ", ".join(names))


def parse_recipient(text: str) -> bytes:
    """The 32-byte X25519 public key of an ``age1...`` recipient."""
    try:
        hrp, key = bech32.decode(text.strip())
    except bech32.Bech32Error as exc:
        raise AgeError(f"recipient {text.strip()[:12]}... is not an age public key ({exc})") from None
    if hrp != RECIPIENT_HRP or len(key) != 32:
        raise AgeError(f"recipient {text.strip()[:12]}... is not an age X25519 public key (age1...)")
    return key


def encode_recipient(public_key: bytes) -> str:
    return bech32.encode(RECIPIENT_HRP, public_key)


def encode_identity(secret: bytes) -> str:
    return bech32.encode(IDENTITY_HRP, secret).upper()


def recipient_of(secret: bytes) -> str:
    """The ``age1...`` recipient of a 32-byte identity."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    return encode_recipient(X25519PrivateKey.from_private_bytes(secret).public_key().public_bytes_raw())


def _read_small(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            data = fh.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise AgeError(f"cannot read the {what} {path}: {exc.strerror or exc}") from None
    if len(data) > MAX_KEY_FILE:
        raise AgeError(f"the {what} {path} is larger than {MAX_KEY_FILE} bytes")
    return data


def read_identities(path: Path) -> list[bytes]:
    """The X25519 identities of an identity file (as ``age-keygen`` writes it)."""
    text = _read_small(path, "identity file").decode("utf-8", "replace")
    keys: list[bytes] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            hrp, key = bech32.decode(line)
        except bech32.Bech32Error:
            hrp, key = "", b""
        if hrp != IDENTITY_HRP or len(key) != 32 or line != line.upper():
            raise AgeError(f"line {number} of the identity file {path} is not an age X25519 identity "
                           "(AGE-SECRET-KEY-1...)")
        keys.append(key)
    if not keys:
        raise AgeError(f"the identity file {path} holds no identity (AGE-SECRET-KEY-1... line)")
    return keys


def read_passphrase(path: Path) -> bytes:
    """The passphrase in a file: its bytes without one trailing newline."""
    data = _read_small(path, "passphrase file")
    data = data[:-2] if data.endswith(b"\r\n") else data[:-1] if data.endswith(b"\n") else data
    if not data:
        raise AgeError(f"the passphrase file {path} is empty")
    return data
