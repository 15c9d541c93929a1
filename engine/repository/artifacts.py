"""Knowledge artifacts kept beside a store, and the rules for their paths.

Artifacts are laid out like a bundle: ``bpmn/<process_id>_v<version>.bpmn``,
``prompts/<name>_v<version>.yaml``, ``patterns/pattern_catalog_v<version>.yaml``,
``examples/examples_v<version>.jsonl``, ``domains/domain_profiles.jsonl``,
``logs/generation_events.jsonl``. :class:`DirectoryArtifactStore` keeps them as files (a FAISS
store's ``artifacts/`` folder, or any folder given with ``--artifacts``).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import tempfile
from pathlib import Path

from engine.errors import StoreError
from engine.files import fsync_dir  # noqa: F401 - re-exported: the backends import it from here

from .base import ArtifactInfo

ARTIFACT_KINDS = {
    "bpmn": re.compile(r"^[A-Za-z0-9_.-]+_v\d+\.bpmn$"),
    "prompts": re.compile(r"^[A-Za-z0-9_.-]+_v\d+\.yaml$"),
    "patterns": re.compile(r"^pattern_catalog_v\d+\.yaml$"),
    "examples": re.compile(r"^examples_v\d+\.jsonl$"),
    "domains": re.compile(r"^domain_profiles\.jsonl$"),
    "logs": re.compile(r"^generation_events\.jsonl$"),
}


def check_artifact_path(path: str) -> str:
    """Return ``path`` if it is a valid artifact path (``kind/name``), else raise StoreError."""
    kind, sep, name = path.partition("/")
    pattern = ARTIFACT_KINDS.get(kind)
    if not sep or pattern is None or not pattern.match(name):
        raise StoreError(f"{path!r} is not a knowledge artifact path",
                         hint="use bpmn/<id>_v<N>.bpmn, prompts/<name>_v<N>.yaml, "
                              "patterns/pattern_catalog_v<N>.yaml, examples/examples_v<N>.jsonl, "
                              "domains/domain_profiles.jsonl or logs/generation_events.jsonl")
    return path


def artifact_kind(path: str) -> str:
    return path.partition("/")[0]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` via a fsynced temporary file and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


class DirectoryArtifactStore:
    """Artifacts as files under one folder (which need not exist until the first write)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    def list(self) -> list[ArtifactInfo]:
        found = []
        for kind in sorted(ARTIFACT_KINDS):
            folder = self.root / kind
            if not folder.is_dir():
                continue
            for entry in sorted(folder.iterdir()):
                rel = f"{kind}/{entry.name}"
                if entry.is_file() and not entry.is_symlink() and ARTIFACT_KINDS[kind].match(entry.name):
                    data = entry.read_bytes()
                    found.append(ArtifactInfo(rel, sha256_hex(data), len(data)))
        return sorted(found, key=lambda a: a.path)

    def read(self, path: str) -> bytes:
        target = self.root / check_artifact_path(path)
        if not target.is_file():
            raise StoreError(f"artifact {path!r} not found in {self.root}")
        return target.read_bytes()

    def write(self, path: str, data: bytes) -> None:
        atomic_write(self.root / check_artifact_path(path), data)

    def delete(self, path: str) -> bool:
        target = self.root / check_artifact_path(path)
        if not target.exists():
            return False
        target.unlink()
        fsync_dir(target.parent)
        return True

    def replace_all(self, files: dict[str, bytes]) -> None:
        """Build the new set in a sibling folder, then swap it in with two renames."""
        for path in files:
            check_artifact_path(path)
        self.root.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(dir=self.root.parent, prefix=f".{self.root.name}.new."))
        try:
            for path, data in files.items():
                atomic_write(staging / path, data)
            old = self.root.with_name(f".{self.root.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            if self.root.exists():
                os.replace(self.root, old)
            os.replace(staging, self.root)
            fsync_dir(self.root.parent)
            shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
