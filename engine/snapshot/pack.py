"""Pack a bundle folder into a reproducible ``<bundle name>.tar.zst`` next to it.

Reproducible: entries sorted by path under the top folder ``<bundle name>/``, PAX format, owner
0:0 with empty user/group names, mtime 0, mode 0755 for folders and 0644 for files, one zstd frame
(level 6 by default, single-threaded, streamed, with its content checksum). The same bundle always
packs to the same bytes, and the archive unpacks with ``tar --use-compress-program=unzstd -xf`` or
``zstd -dc X | tar x``. The archive holds every file of the folder, so a signature
(``checksums.sha256.asc``) travels with it.
"""

from __future__ import annotations

import os
import tarfile
from pathlib import Path
from typing import BinaryIO

from engine import owner
from engine.errors import BundleError
from engine.files import atomic_file

from . import layout

MTIME = 0


def _info(name: str, *, directory: bool, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    info.mtime = MTIME
    info.size = size
    return info


def _entries(bundle: Path) -> list[tuple[str, Path | None]]:
    """``(member name, file or None for a folder)`` sorted by member name."""
    files, odd = layout.relative_files(bundle)
    if odd:
        raise BundleError(f"{bundle} holds entries that are not regular files: {odd}",
                          hint="remove links and special files from the bundle before packing")
    top = bundle.name
    names: dict[str, Path | None] = {top: None}
    for rel in files:
        parts = rel.split("/")
        for i in range(1, len(parts)):
            names["/".join([top, *parts[:i]])] = None
        names[f"{top}/{rel}"] = layout.member(bundle, rel)
    return sorted(names.items())


def finished_bundle(bundle: str | os.PathLike[str]) -> Path:
    """The resolved bundle folder; BundleError when it is not a finished bundle (no manifest.json)."""
    root = Path(bundle).resolve()
    if not layout.manifest_path(root).is_file():
        raise BundleError(f"{root} is not a finished bundle (no manifest.json)",
                          hint="pack a folder written by export_snapshot")
    return root


def write_archive(root: Path, out: BinaryIO, *, level: int = 6) -> None:
    """Stream the reproducible ``.tar.zst`` of the bundle folder ``root`` into ``out`` (not closed)."""
    import zstandard

    compressor = zstandard.ZstdCompressor(level=level, threads=0, write_checksum=True)
    with compressor.stream_writer(out, closefd=False) as zfh:
        with tarfile.open(fileobj=zfh, mode="w|", format=tarfile.PAX_FORMAT) as tar:
            for name, path in _entries(root):
                if path is None:
                    tar.addfile(_info(name, directory=True))
                    continue
                with open(path, "rb") as fh:
                    size = os.fstat(fh.fileno()).st_size
                    tar.addfile(_info(name, directory=False, size=size), fh)


def pack_bundle(bundle: str | os.PathLike[str], *, level: int = 6) -> Path:
    """Write ``<bundle name>.tar.zst`` next to ``bundle`` (atomically, replacing an older one); return it."""
    root = finished_bundle(bundle)
    target = layout.archive_path(root)
    tmp = layout.pack_temp_path(target, owner.token())
    with atomic_file(target, tmp) as raw:
        write_archive(root, raw, level=level)
    return target
