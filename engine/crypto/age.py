"""The age v1 header (age-encryption.org/v1): X25519 and scrypt stanzas, and the header MAC.

An age file is a text header that wraps a random 16-byte file key for one or more recipients,
then the binary payload (:mod:`.age_stream`). This module writes and reads the header:

- X25519 stanzas, for recipients and identities (:mod:`.keys`);
- the scrypt passphrase stanza (which must be the only stanza of its header);
- the header MAC: HMAC-SHA-256 keyed with HKDF(file key, "header") over the header up to ``---``.

Stanzas of other types are ignored when reading, as the format asks. Nothing here ever puts a key,
a passphrase or a file key into a message: errors say what is wrong and where, never with what.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import BinaryIO

from .keys import AgeError, AgeKeys

VERSION_LINE = b"age-encryption.org/v1\n"
ARMOR_LINE = b"-----BEGIN AGE ENCRYPTED FILE-----"
X25519_INFO = b"age-encryption.org/v1/X25519"
SCRYPT_LABEL = b"age-encryption.org/v1/scrypt"
DEFAULT_WORK_FACTOR = 18  # what the stock age uses: about a second, 256 MiB
MAX_WORK_FACTOR = 20  # reading: above this scrypt needs more than 1 GiB; refused
MAX_LINE = 8192
MAX_HEADER = 1 << 20
ZERO_NONCE = bytes(12)


@dataclass(frozen=True)
class Stanza:
    type: str
    args: tuple[str, ...]
    body: bytes


# --- base64 -----------------------------------------------------------------------------------


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii").rstrip("=")


def b64decode(text: str | bytes, what: str) -> bytes:
    """Decode canonical unpadded base64; raise AgeError naming ``what`` otherwise."""
    raw = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    if "=" in raw or not re.fullmatch(r"[A-Za-z0-9+/]*", raw) or len(raw) % 4 == 1:
        raise AgeError(f"{what} is not unpadded base64")
    data = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    if b64encode(data) != raw:
        raise AgeError(f"{what} is not canonical base64")
    return data


# --- primitives ----------------------------------------------------------------------------------


def hkdf(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt, info=info).derive(ikm)


def _seal(key: bytes, plaintext: bytes) -> bytes:
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    return ChaCha20Poly1305(key).encrypt(ZERO_NONCE, plaintext, None)


def _open(key: bytes, ciphertext: bytes) -> bytes | None:
    from cryptography.exceptions import InvalidTag
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    try:
        return ChaCha20Poly1305(key).decrypt(ZERO_NONCE, ciphertext, None)
    except InvalidTag:
        return None


def _scrypt_key(passphrase: bytes, salt: bytes, work_factor: int) -> bytes:
    n = 1 << work_factor
    return hashlib.scrypt(passphrase, salt=SCRYPT_LABEL + salt, n=n, r=8, p=1, dklen=32,
                          maxmem=1024 * n + (64 << 20))


def header_mac(file_key: bytes, header_up_to_mark: bytes) -> bytes:
    return hmac.new(hkdf(file_key, b"", b"header"), header_up_to_mark, hashlib.sha256).digest()


# --- writing -------------------------------------------------------------------------------------


def _x25519_stanza(file_key: bytes, recipient: bytes) -> Stanza:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    ephemeral = X25519PrivateKey.generate()
    share = ephemeral.public_key().public_bytes_raw()
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient))
    wrap_key = hkdf(shared, share + recipient, X25519_INFO)
    return Stanza("X25519", (b64encode(share),), _seal(wrap_key, file_key))


def _scrypt_stanza(file_key: bytes, passphrase: bytes, work_factor: int) -> Stanza:
    salt = os.urandom(16)
    return Stanza("scrypt", (b64encode(salt), str(work_factor)),
                  _seal(_scrypt_key(passphrase, salt, work_factor), file_key))


def _stanza_bytes(stanza: Stanza) -> bytes:
    body = b64encode(stanza.body)
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    if not lines or len(lines[-1]) == 64:
        lines.append("")
    return ("-> " + " ".join((stanza.type, *stanza.args)) + "\n" + "\n".join(lines) + "\n").encode("ascii")


def write_header(file_key: bytes, recipients: Iterable[bytes] = (), passphrase: bytes | None = None,
                 work_factor: int = DEFAULT_WORK_FACTOR) -> bytes:
    """The header wrapping ``file_key`` for every recipient, or for the passphrase (never both)."""
    recipients = list(recipients)
    if bool(recipients) == (passphrase is not None):
        raise AgeError("encrypt to age recipients or with a passphrase, not both and not neither")
    stanzas = ([_scrypt_stanza(file_key, passphrase, work_factor)] if passphrase is not None
               else [_x25519_stanza(file_key, r) for r in recipients])
    head = VERSION_LINE + b"".join(_stanza_bytes(s) for s in stanzas) + b"---"
    return head + b" " + b64encode(header_mac(file_key, head)).encode("ascii") + b"\n"


# --- reading -------------------------------------------------------------------------------------


def _line(src: BinaryIO, read_so_far: int) -> bytes:
    line = src.readline(MAX_LINE)
    if not line.endswith(b"\n"):
        raise AgeError("the header is truncated or has an overlong line" if line else "the header is truncated")
    if read_so_far + len(line) > MAX_HEADER:
        raise AgeError(f"the header is larger than {MAX_HEADER} bytes")
    return line


def read_header(src: BinaryIO) -> tuple[list[Stanza], bytes, bytes]:
    """Parse the header at the start of ``src``: ``(stanzas, header up to '---', MAC)``; ``src`` is left at the payload."""
    first = src.readline(len(VERSION_LINE))
    if len(first) >= 10 and ARMOR_LINE.startswith(first.rstrip(b"\r\n")):
        raise AgeError("it is an ASCII-armored age file; decrypt it with age -d first, or encrypt without -a")
    if first != VERSION_LINE:
        what = "another age format version" if first.startswith(b"age-encryption.org/") else "not an age file"
        raise AgeError(f"{what} (the first line is not age-encryption.org/v1)")
    head = bytearray(first)
    stanzas: list[Stanza] = []
    while True:
        line = _line(src, len(head))
        if line.startswith(b"--- "):
            mac = b64decode(line[4:-1], "the header MAC")
            if len(mac) != 32 or not stanzas:
                raise AgeError("the header MAC line is malformed" if stanzas else "the header has no stanza")
            return stanzas, bytes(head) + b"---", mac
        if not line.startswith(b"-> "):
            raise AgeError("the header has a line that is neither a stanza nor the MAC")
        head += line
        args = line[3:-1].split(b" ")
        if any(not a or any(c < 0x21 or c > 0x7E for c in a) for a in args):
            raise AgeError("a stanza of the header has an empty or non-printable argument")
        body = bytearray()
        while True:
            part = _line(src, len(head))
            head += part
            if len(part) - 1 > 64:
                raise AgeError("a stanza body line is longer than 64 columns")
            body += part[:-1]
            if len(part) - 1 < 64:
                break
        text = [a.decode("ascii") for a in args]
        stanzas.append(Stanza(text[0], tuple(text[1:]), b64decode(bytes(body), "a stanza body")))


def _x25519_unwrap(stanza: Stanza, identities: tuple[bytes, ...]) -> bytes | None:
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

    if len(stanza.args) != 1:
        raise AgeError("an X25519 stanza must have exactly one argument")
    share = b64decode(stanza.args[0], "an X25519 stanza's share")
    if len(share) != 32 or len(stanza.body) != 32:
        raise AgeError("an X25519 stanza has a share or body of the wrong length")
    for secret in identities:
        private = X25519PrivateKey.from_private_bytes(secret)
        try:
            shared = private.exchange(X25519PublicKey.from_public_bytes(share))
        except ValueError:
            raise AgeError("an X25519 stanza has a low-order share (an all-zero shared secret)") from None
        if shared == bytes(32):
            raise AgeError("an X25519 stanza has a low-order share (an all-zero shared secret)")
        recipient = private.public_key().public_bytes_raw()
        file_key = _open(hkdf(shared, share + recipient, X25519_INFO), stanza.body)
        if file_key is not None:
            return file_key
    return None


def _scrypt_unwrap(stanza: Stanza, passphrase: bytes) -> bytes | None:
    if len(stanza.args) != 2 or not re.fullmatch(r"[1-9][0-9]*", stanza.args[1]):
        raise AgeError("a scrypt stanza must have a salt and a decimal work factor")
    salt = b64decode(stanza.args[0], "the scrypt salt")
    work_factor = int(stanza.args[1])
    if len(salt) != 16 or len(stanza.body) != 32:
        raise AgeError("a scrypt stanza has a salt or body of the wrong length")
    if work_factor > MAX_WORK_FACTOR:
        raise AgeError(f"the scrypt work factor {work_factor} is above the {MAX_WORK_FACTOR} this tool accepts")
    return _open(_scrypt_key(passphrase, salt, work_factor), stanza.body)


def unwrap_file_key(stanzas: list[Stanza], keys: AgeKeys) -> bytes:
    """The file key, unwrapped by one of ``keys``; AgeError when none fits (the message says why)."""
    scrypt = [s for s in stanzas if s.type == "scrypt"]
    if scrypt and len(stanzas) > 1:
        raise AgeError("a scrypt stanza must be the only stanza of the header")
    if scrypt:
        if keys.passphrase is None:
            raise AgeError("it is encrypted with a passphrase, and no passphrase was given")
        file_key = _scrypt_unwrap(scrypt[0], keys.passphrase)
        if file_key is None:
            raise AgeError("the passphrase does not decrypt it (wrong passphrase)")
        return file_key
    x25519 = [s for s in stanzas if s.type == "X25519"]
    if not keys.identities:
        raise AgeError("it is encrypted to age recipients, and no identity was given")
    for stanza in x25519:
        file_key = _x25519_unwrap(stanza, keys.identities)
        if file_key is not None:
            return file_key
    raise AgeError(f"none of the {len(keys.identities)} identities given can decrypt it (wrong key; it is "
                   f"encrypted to {len(x25519)} X25519 recipient(s))")
