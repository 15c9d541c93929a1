"""Unpack a ``.tar.zst`` bundle safely into a private temporary folder.

Refused with :class:`~engine.errors.UnsafeArchive` (and nothing left behind): absolute paths,
``..`` components, symbolic and hard links, devices, fifos and any other non-regular entry,
members outside one top folder, duplicate members, a member or a total above the size limits,
and more members than allowed. Files are created with ``O_EXCL|O_NOFOLLOW`` and fixed modes.
An encrypted archive (``.age``: an age-encrypted ``.tar.zst``) goes through the same checks, decrypted as it streams.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from engine.errors import DecryptionFailed, UnsafeArchive

from . import layout

if TYPE_CHECKING:
    from engine.crypto import AgeKeys, AgeReader

CHUNK = 1 << 20


@dataclass(frozen=True)
class UnpackLimits:
    """Upper bounds for an archive's content (defaults fit a 10M x 768 store with room to spare)."""

    max_member_bytes: int = 64 << 30
    max_total_bytes: int = 128 << 30
    max_members: int = 100_000


def _check_name(name: str) -> list[str]:
    if not name or name.startswith("/") or (len(name) > 1 and name[1] == ":"):
        raise UnsafeArchive(f"archive member {name!r} has an absolute path",
                            hint="only unpack bundles written by procos snapshot pack")
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts) or "\\" in name or "\x00" in name:
        raise UnsafeArchive(f"archive member {name!r} climbs out of the unpack folder",
                            hint="only unpack bundles written by procos snapshot pack")
    if not parts:
        raise UnsafeArchive(f"archive member {name!r} has an empty path")
    return parts


def _check_type(member: tarfile.TarInfo) -> None:
    if member.issym() or member.islnk():
        kind = "symbolic link" if member.issym() else "hard link"
        raise UnsafeArchive(f"archive member {member.name!r} is a {kind} (to {member.linkname!r}); "
                            "bundles hold only files and folders")
    if not (member.isreg() or member.isdir()):
        raise UnsafeArchive(f"archive member {member.name!r} is a device, fifo or other special file; "
                            "bundles hold only files and folders")


def safe_unpack(archive: str | os.PathLike[str], dest_parent: str | os.PathLike[str] | None = None,
                limits: UnpackLimits | None = None, *, keys: AgeKeys | None = None) -> tuple[Path, Path]:
    """Unpack ``archive`` into a new temporary folder; return ``(temp folder, bundle root inside it)``.

    An ``.age`` archive is decrypted with ``keys`` while it streams into the same checks: its header
    (the key) is checked before the temporary folder exists, and every chunk authenticates before
    its bytes are unpacked; after the tar's end the rest of the file is read and authenticated too.
    The caller removes the temporary folder. On UnsafeArchive, DecryptionFailed (or any failure)
    it is already gone.
    """
    import zstandard

    limits = limits or UnpackLimits()
    path = Path(archive)
    with open(path, "rb") as raw:
        source = decrypting(raw, path, keys) if layout.is_encrypted(path) else raw
        tmp = Path(tempfile.mkdtemp(prefix=".procos-unpack-", dir=dest_parent))
        try:
            top = _unpack_into(source, path, tmp, limits, zstandard)
            if source is not raw:
                source.drain()
        except tarfile.TarError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UnsafeArchive(f"{archive} is not a readable tar archive ({exc})") from exc
        except zstandard.ZstdError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise UnsafeArchive(f"{archive} is not a readable zstd stream ({exc})") from exc
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return tmp, tmp / top


def decrypting(raw: BinaryIO, path: Path, keys: AgeKeys | None) -> AgeReader:
    """A decrypting reader over the ``.age`` file ``raw`` (its header and key checked now); DecryptionFailed otherwise."""
    from engine.crypto import AgeReader

    if keys is None:
        raise DecryptionFailed(f"{path} is encrypted (age) and no key was given to decrypt it; nothing was written",
                               [{"path": str(path), "problem": "encrypted, no key given"}],
                               hint="give --identity KEY_FILE (or set PROCOS_AGE_IDENTITY) or --passphrase-file F")
    return AgeReader(raw, keys, path)


def _unpack_into(source: BinaryIO, archive: Path, tmp: Path, limits: UnpackLimits, zstandard) -> str:
    top: str | None = None
    seen: set[str] = set()
    total = 0
    reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True, closefd=False)
    with reader, tarfile.open(fileobj=reader, mode="r|") as tar:
        for count, member in enumerate(tar, start=1):
            if count > limits.max_members:
                raise UnsafeArchive(f"{archive} has more than {limits.max_members} members")
            parts = _check_name(member.name)
            _check_type(member)
            if top is None:
                top = parts[0]
            elif parts[0] != top:
                raise UnsafeArchive(f"archive member {member.name!r} is outside the top folder {top!r}")
            rel = "/".join(parts)
            if rel in seen:
                raise UnsafeArchive(f"archive member {member.name!r} appears twice")
            seen.add(rel)
            target = tmp.joinpath(*parts)
            if member.isdir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            if member.size > limits.max_member_bytes:
                raise UnsafeArchive(f"archive member {member.name!r} is {member.size} bytes, more than "
                                    f"the {limits.max_member_bytes} allowed per file")
            total += member.size
            if total > limits.max_total_bytes:
                raise UnsafeArchive(f"{archive} unpacks to more than {limits.max_total_bytes} bytes")
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            _copy_member(tar, member, target)
    if top is None:
        raise UnsafeArchive(f"{archive} is empty")
    if not layout.is_bundle_name(top):
        raise UnsafeArchive(f"{archive}'s top folder {top!r} is not named like a bundle "
                            "(knowledge_snapshot_YYYYMMDD_HHMMSS)")
    return top


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        remaining = member.size
        while remaining:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                raise UnsafeArchive(f"archive member {member.name!r} is truncated")
            out.write(chunk)
            remaining -= len(chunk)
