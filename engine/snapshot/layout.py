"""Where every file of a snapshot bundle lives: pure path functions, the only place bundle paths are joined.

A bundle is a folder ``knowledge_snapshot_YYYYMMDD_HHMMSS[_N]/`` holding::

    manifest.json  checksums.sha256  [checksums.sha256.asc]  embeddings/part-00000.parquet ...  [index.faiss]
    bpmn/<process_id>_v<version>.bpmn   prompts/<name>_v<version>.yaml
    patterns/pattern_catalog_v<version>.yaml   examples/examples_v<version>.jsonl
    domains/domain_profiles.jsonl   [logs/generation_events.jsonl]
    [changes.jsonl]   (delta bundles only; see docs/snapshot-format.md)

Schema_version 1 bundles hold one ``embeddings.parquet`` instead of the ``embeddings/`` shards;
:func:`embeddings_path` stays for reading them. The snapshots folder holding the bundles also holds
``snapshot_catalog.jsonl``.

Bundle-relative paths are POSIX strings (``bpmn/order_v2.bpmn``); :func:`member` turns one into a
filesystem path under a bundle root after checking it cannot escape it.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path, PurePosixPath

from engine.errors import BundleError

BUNDLE_PREFIX = "knowledge_snapshot_"
BUNDLE_RE = re.compile(r"^knowledge_snapshot_\d{8}_\d{6}(?:_\d+)?$")
STAGING_RE = re.compile(r"^\.knowledge_snapshot_\d{8}_\d{6}_tmp-[^/]+$")  # an export's hidden staging folder
PACK_TEMP_RE = re.compile(r"^\.(knowledge_snapshot_\d{8}_\d{6}(?:_\d+)?\.tar\.zst)\.tmp-([^/]+)$")
ARCHIVE_SUFFIX = ".tar.zst"

MANIFEST = "manifest.json"
CHECKSUMS = "checksums.sha256"
SIGNATURE = "checksums.sha256.asc"  # detached OpenPGP signature of checksums.sha256; outside it, like itself
ENCRYPTED_SUFFIX = ".age"  # an age-encrypted .tar.zst: PATH.age of a bundle folder or of its .tar.zst
EMBEDDINGS = "embeddings.parquet"  # schema_version 1 only
SHARD_DIR = "embeddings"  # schema_version 2: embeddings/part-NNNNN.parquet
SHARD_RE = re.compile(r"^embeddings/part-(\d{5})\.parquet$")
MAX_SHARDS = 100_000
FAISS_INDEX = "index.faiss"
STAGING_STATE = ".export_state.json"  # lives only in a staging folder, never in a finished bundle
CHANGES = "changes.jsonl"  # delta bundles only: one line per changed id, ascending id
CATALOG = "snapshot_catalog.jsonl"  # in the snapshots folder: one line per bundle written there

BACKEND_SPECIFIC = frozenset({FAISS_INDEX})
"""Files listed in checksums.sha256 but left out of the content hash (they differ by source backend)."""

# Artifact kind (folder) -> the manifest counter that counts its files.
ARTIFACT_COUNTERS = {
    "bpmn": "bpmn_count",
    "prompts": "prompt_count",
    "patterns": "pattern_count",
    "examples": "example_count",
    "domains": "domain_count",
    "logs": "log_count",
}
LOGS_FILE = "logs/generation_events.jsonl"


def bundle_stem(when: datetime) -> str:
    """``knowledge_snapshot_YYYYMMDD_HHMMSS`` for an aware UTC datetime."""
    return BUNDLE_PREFIX + when.strftime("%Y%m%d_%H%M%S")


def bundle_candidates(out_dir: Path, stem: str):
    """Final bundle paths to try in order: ``stem``, ``stem_2``, ``stem_3``, ..."""
    yield out_dir / stem
    n = 2
    while True:
        yield out_dir / f"{stem}_{n}"
        n += 1


def staging_prefix(stem: str) -> str:
    """Prefix of the hidden temporary folder a bundle is written in before its final rename."""
    return f".{stem}_tmp-"


def is_bundle_name(name: str) -> bool:
    return bool(BUNDLE_RE.match(name))


def is_staging_name(name: str) -> bool:
    """Whether ``name`` is an export's hidden staging folder (``.knowledge_snapshot_..._tmp-XXXX``)."""
    return bool(STAGING_RE.match(name))


def pack_temp_path(archive: Path, writer: str) -> Path:
    """The hidden file an archive is written to before its rename: ``.<archive name>.tmp-<writer>``."""
    return archive.with_name(f".{archive.name}.tmp-{writer}")


def pack_temp_writer(name: str) -> str | None:
    """The writer token of a pack's temporary file name, or None when ``name`` is not one."""
    match = PACK_TEMP_RE.match(name)
    return match.group(2) if match else None


def archive_path(bundle: Path) -> Path:
    """``<bundle name>.tar.zst`` next to the bundle folder."""
    return bundle.parent / f"{bundle.name}{ARCHIVE_SUFFIX}"


def is_archive(path: Path) -> bool:
    return path.name.endswith(ARCHIVE_SUFFIX)


def archive_stem(path: Path) -> str:
    return path.name[: -len(ARCHIVE_SUFFIX)]


def is_encrypted(path: Path) -> bool:
    return path.name.endswith(ENCRYPTED_SUFFIX)


def encrypted_path(path: Path) -> Path:
    """Where the encrypted copy of a bundle folder or archive goes: ``PATH.age`` beside it.

    Either way it holds the packed ``.tar.zst``: ``knowledge_snapshot_X.age`` for the folder,
    ``knowledge_snapshot_X.tar.zst.age`` for its archive.
    """
    return path.parent / f"{path.name}{ENCRYPTED_SUFFIX}"


def check_relative(rel: str) -> str:
    """Return ``rel`` when it is a plain relative POSIX path inside a bundle, else raise BundleError."""
    p = PurePosixPath(rel)
    if (not rel or rel.startswith("/") or "\\" in rel or "\x00" in rel or "\n" in rel
            or any(part in ("", ".", "..") for part in rel.split("/")) or p.is_absolute()):
        raise BundleError(f"{rel!r} is not a safe bundle-relative path")
    return rel


def member(root: Path, rel: str) -> Path:
    """The filesystem path of bundle-relative ``rel`` under bundle ``root``."""
    return root.joinpath(*check_relative(rel).split("/"))


def manifest_path(root: Path) -> Path:
    return root / MANIFEST


def checksums_path(root: Path) -> Path:
    return root / CHECKSUMS


def signature_path(root: Path) -> Path:
    return root / SIGNATURE


def embeddings_path(root: Path) -> Path:
    return root / EMBEDDINGS


def shard_name(index: int) -> str:
    """Bundle-relative path of embeddings shard ``index`` (0-based): ``embeddings/part-00000.parquet``."""
    if not 0 <= index < MAX_SHARDS:
        raise BundleError(f"shard number {index} is outside 0..{MAX_SHARDS - 1}",
                          hint="export with a larger --shard-rows")
    return f"{SHARD_DIR}/part-{index:05d}.parquet"


def shard_path(root: Path, index: int) -> Path:
    return member(root, shard_name(index))


def shard_index(rel: str) -> int | None:
    """The shard number of a bundle-relative path, or None when it is not a shard's name."""
    match = SHARD_RE.match(rel)
    return int(match.group(1)) if match else None


def faiss_index_path(root: Path) -> Path:
    return root / FAISS_INDEX


def state_path(staging: Path) -> Path:
    return staging / STAGING_STATE


def changes_path(root: Path) -> Path:
    return root / CHANGES


def catalog_path(out_dir: Path) -> Path:
    """``snapshot_catalog.jsonl`` of a snapshots folder."""
    return Path(out_dir) / CATALOG


def artifact_kind(rel: str) -> str | None:
    """The artifact kind of a bundle-relative path (``bpmn``, ``prompts``, ...), or None."""
    kind, sep, _ = rel.partition("/")
    return kind if sep and kind in ARTIFACT_COUNTERS else None


def relative_files(root: Path) -> tuple[list[str], list[str]]:
    """Every regular file under ``root`` as a sorted relative path, and every other entry (links, fifos...)."""
    files: list[str] = []
    odd: list[str] = []
    stack = [(root, "")]
    while stack:
        folder, prefix = stack.pop()
        for entry in folder.iterdir():
            rel = f"{prefix}{entry.name}"
            if entry.is_symlink():
                odd.append(rel)
            elif entry.is_dir():
                stack.append((entry, rel + "/"))
            elif entry.is_file():
                files.append(rel)
            else:
                odd.append(rel)
    return sorted(files), sorted(odd)
