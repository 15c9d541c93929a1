"""Unpack a ``.tar.zst`` bundle safely into a private temporary folder.

Refused with :class:`~engine.errors.UnsafeArchive` (and nothing left behind): absolute paths,
``..`` components, symbolic and hard links, devices, fifos and any other non-regular entry,
members outside one top folder, duplicate members, a member or a total above the size limits,
and more members than allowed. Files are created with ``O_EXCL|O_NOFOLLOW`` and fixed modes.
An encrypted archive (``.age``: an age-encrypted ``.tar.zst``) goes through the same checks, decrypted as it streams.
Refused with :class:`~engine.errors.ArchiveDamaged` (a verification failure naming the archive):
anything but exactly one complete zstd frame (bytes appended, a second frame, truncation), an
undecodable stream, a broken tar, or data after the tar's end-of-archive marker (see
:mod:`.archive_stream`). In an encrypted archive, age authenticates every byte of the file, and a
second frame inside the decrypted stream is data after the tar's end.

The temporary folder ``.procos-unpack-*`` records its writer (:mod:`engine.owner`) and the bundle
is unpacked under ``.partial`` and renamed to its top folder's name only when complete, so a
killed unpack never leaves a complete-looking bundle; the next unpack into the same parent folder
removes the temporary folders whose writer is gone.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from engine import owner
from engine.errors import ArchiveDamaged, DecryptionFailed, UnsafeArchive

from . import archive_stream, layout
from .archive_stream import HINT

if TYPE_CHECKING:
    from engine.crypto import AgeKeys, AgeReader

CHUNK = 1 << 20
UNPACK_PREFIX = ".procos-unpack-"
WRITER_FILE = ".writer.json"
PARTIAL = ".partial"  # the bundle's folder while it is being unpacked
GRACE_SECONDS = 3600.0  # a temporary folder without a writer record is someone's only after this long


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
    parent = Path(dest_parent) if dest_parent is not None else Path(tempfile.gettempdir())
    with open(path, "rb") as raw:
        encrypted = layout.is_encrypted(path)
        source = decrypting(raw, path, keys) if encrypted else raw  # the key is checked before any folder exists
        if not encrypted:
            archive_stream.check_single_frame(raw, path)
        remove_stale_unpacks(parent)
        tmp = Path(tempfile.mkdtemp(prefix=f"{UNPACK_PREFIX}{owner.token()}-", dir=parent))
        try:
            (tmp / WRITER_FILE).write_text(json.dumps(owner.this_process(kind="unpack")), encoding="utf-8")
            top = _unpack_into(source, path, tmp, limits, across_frames=encrypted)
            if encrypted:
                source.drain()  # the rest of the file, authenticated
            os.rename(tmp / PARTIAL, tmp / top)  # complete: only now does the bundle folder have its name
        except tarfile.TarError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ArchiveDamaged(f"{path.name} is not a readable tar archive ({exc})", hint=HINT,
                                 path=path.name, problem=f"is not a readable tar archive ({exc})") from exc
        except zstandard.ZstdError as exc:
            shutil.rmtree(tmp, ignore_errors=True)
            raise ArchiveDamaged(f"{path.name} is not a readable zstd stream ({exc})", hint=HINT,
                                 path=path.name, problem=f"is not a readable zstd stream ({exc})") from exc
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


def remove_stale_unpacks(parent: Path) -> list[str]:
    """Remove ``.procos-unpack-*`` folders in ``parent`` left by unpacks whose process is gone; return their names.

    A folder without a writer record counts as gone once it is older than :data:`GRACE_SECONDS`.
    """
    removed: list[str] = []
    try:
        children = list(parent.iterdir())
    except OSError:
        return removed
    for child in children:
        if not child.name.startswith(UNPACK_PREFIX) or child.is_symlink() or not child.is_dir():
            continue
        try:
            writer = json.loads((child / WRITER_FILE).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            writer = None
        token = "-".join(child.name[len(UNPACK_PREFIX):].split("-")[:3])
        if isinstance(writer, dict):
            gone = owner.alive(writer) is False
        elif owner.token_alive(token) is not None:  # the writer's token in the name (before the record)
            gone = owner.token_alive(token) is False
        else:
            try:
                gone = time.time() - child.stat().st_mtime > GRACE_SECONDS
            except OSError:
                continue
        if gone:
            shutil.rmtree(child, ignore_errors=True)
            removed.append(child.name)
    return removed


def _unpack_into(source: BinaryIO, archive: Path, tmp: Path, limits: UnpackLimits, *, across_frames: bool) -> str:
    """Unpack the zstd-compressed tar read from ``source`` under ``tmp/.partial``; return its top folder's name.

    ``across_frames``: a decrypted stream cannot be walked for its frame boundary, so a second frame is
    decompressed and found as data after the tar's end."""
    import zstandard

    top: str | None = None
    seen: set[str] = set()
    total = 0
    partial = tmp / PARTIAL
    partial.mkdir(mode=0o755)
    stream = archive_stream.TailReader(
        zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=across_frames, closefd=False))
    with tarfile.open(fileobj=stream, mode="r|") as tar:
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
            target = partial.joinpath(*parts[1:])
            if member.isdir():
                target.mkdir(mode=0o755, parents=True, exist_ok=True)
                continue
            if member.size > limits.max_member_bytes:
                raise UnsafeArchive(f"archive member {member.name!r} is {member.size} bytes, more than "
                                    f"the {limits.max_member_bytes} allowed per file")
            total += member.size
            if total > limits.max_total_bytes:
                raise UnsafeArchive(f"{archive} unpacks to more than {limits.max_total_bytes} bytes")
            if len(parts) == 1:
                raise UnsafeArchive(f"archive member {member.name!r} is a file where the bundle's top "
                                    "folder belongs")
            target.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
            _copy_member(tar, member, target, archive)
        archive_stream.check_tar_end(stream, tar.offset, archive)
    if top is None:
        raise UnsafeArchive(f"{archive} is empty")
    if not layout.is_bundle_name(top):
        raise UnsafeArchive(f"{archive}'s top folder {top!r} is not named like a bundle "
                            "(knowledge_snapshot_YYYYMMDD_HHMMSS)")
    return top


def _copy_member(tar: tarfile.TarFile, member: tarfile.TarInfo, target: Path, archive: Path) -> None:
    source = tar.extractfile(member)
    assert source is not None
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as out:
        remaining = member.size
        while remaining:
            chunk = source.read(min(CHUNK, remaining))
            if not chunk:
                raise ArchiveDamaged(f"{archive.name}: member {member.name!r} is truncated", hint=HINT,
                                     path=archive.name, problem=f"member {member.name!r} is truncated")
            out.write(chunk)
            remaining -= len(chunk)
