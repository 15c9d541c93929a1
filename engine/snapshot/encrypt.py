"""Encrypt a bundle at rest: ``PATH.age``, its ``.tar.zst`` in the age v1 format, streamed with bounded memory.

A bundle folder is packed on the fly (the same reproducible ``.tar.zst`` bytes as
:func:`~.pack.pack_bundle`, never written unencrypted); a ``.tar.zst`` is encrypted as it is.
The result decrypts with the stock ``age -d -i key.txt PATH.age > out.tar.zst``, and every
command that reads bundles opens it when given the key (:func:`~.reader.open_bundle`).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.crypto.age import DEFAULT_WORK_FACTOR
from engine.crypto.keys import AgeError, parse_recipient, read_passphrase
from engine.errors import BundleError, InvalidInput
from engine.files import atomic_file

from . import layout
from .pack import finished_bundle, write_archive

COPY_CHUNK = 1 << 20


def encrypt_bundle(path: str | os.PathLike[str], recipients: Iterable[str] = (),
                   passphrase_file: str | os.PathLike[str] | None = None, *, level: int = 6,
                   work_factor: int = DEFAULT_WORK_FACTOR) -> dict[str, Any]:
    """Write the encrypted ``PATH.age`` beside ``path`` (a bundle folder, packed on the fly, or its ``.tar.zst``).

    Encrypted to every ``age1...`` recipient, or with the passphrase in ``passphrase_file`` (the
    format allows one or the other, not both). Returns ``{"path", "source", "recipients",
    "passphrase", "bytes"}``; the output replaces an older one atomically.
    """
    from engine.crypto import AgeWriter

    src = Path(path)
    recipients = list(recipients)
    if bool(recipients) == (passphrase_file is not None):
        raise InvalidInput("give --recipient AGE_PUBLIC_KEY (one or more) or --passphrase-file F, not both"
                           if recipients else "give --recipient AGE_PUBLIC_KEY or --passphrase-file F",
                           hint="age-keygen -o key.txt prints a recipient (age1...)")
    try:
        public = [parse_recipient(r) for r in recipients]
        passphrase = read_passphrase(Path(passphrase_file)) if passphrase_file is not None else None
    except AgeError as exc:
        raise InvalidInput(str(exc), hint="a recipient is the age1... line age-keygen prints") from None
    if src.is_dir():
        root = finished_bundle(src)
    elif src.is_file() and layout.is_archive(src):
        root = None
    else:
        raise BundleError(f"{src} is neither a bundle folder nor a .tar.zst archive",
                          hint="encrypt a folder written by procos snapshot export, or its .tar.zst")
    target = layout.encrypted_path(src.resolve() if root is None else root)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    with atomic_file(target, tmp) as raw:
        writer = AgeWriter(raw, public, passphrase, work_factor)
        if root is not None:
            write_archive(root, writer, level=level)
        else:
            with open(src, "rb") as fh:
                for block in iter(lambda: fh.read(COPY_CHUNK), b""):
                    writer.write(block)
        writer.finish()
    return {"path": str(target), "source": str(src), "recipients": recipients,
            "passphrase": passphrase is not None, "bytes": target.stat().st_size}
