"""Encryption at rest in the age v1 format (https://age-encryption.org/v1), implemented here.

- :mod:`.keys`: recipients (``age1...``), identities (``AGE-SECRET-KEY-1...``), passphrase files;
  :class:`~.keys.AgeKeys`
- :mod:`.age`: the header with its X25519 and scrypt stanzas and its MAC
- :mod:`.age_stream`: :class:`~.age_stream.AgeWriter` / :class:`~.age_stream.AgeReader`, the
  chunked ChaCha20-Poly1305 payload, streamed with bounded memory
- :mod:`.bech32`: the key encoding

Files written here decrypt with the stock ``age -d``, and files of the stock ``age`` decrypt here.
"""

from __future__ import annotations

from .age_stream import AgeReader, AgeWriter
from .keys import AgeError, AgeKeys, encode_identity, parse_recipient, recipient_of

__all__ = ["AgeError", "AgeKeys", "AgeReader", "AgeWriter", "encode_identity", "parse_recipient", "recipient_of"]
