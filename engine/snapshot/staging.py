"""The staging folder an export is written in, and the step state it carries on disk.

``start_bundle`` creates ``.knowledge_snapshot_YYYYMMDD_HHMMSS_tmp-XXXX`` in the snapshots folder;
each later step (possibly in another process) records its results in ``.export_state.json`` inside
it, and ``finish_bundle`` reads them. A staging folder is hidden and has no manifest, so it never
looks like a finished bundle; ``abort_bundle`` removes it.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import BundleError
from engine.files import fsync_dir

from . import layout


def fsync_tree_dirs(root: Path) -> None:
    """fsync every folder under ``root`` (deepest first) and ``root`` itself."""
    folders = [Path(dirpath) for dirpath, _, _ in os.walk(root)]
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(folder)


def start_bundle(out_dir: str | os.PathLike[str], *, now: datetime | None = None) -> Path:
    """Create a staging folder in the snapshots folder ``out_dir`` (created if missing); return it."""
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    stem = layout.bundle_stem(when)
    staging = Path(tempfile.mkdtemp(prefix=layout.staging_prefix(stem), dir=out))
    write_state(staging, {
        "stem": stem,
        "snapshot_id": str(uuid.uuid4()),
        "created_utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
    })
    fsync_dir(out)
    return staging


def read_state(staging: str | os.PathLike[str]) -> dict[str, Any]:
    path = layout.state_path(Path(staging))
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BundleError(f"{staging} is not an export staging folder (no {layout.STAGING_STATE})",
                          hint="start a new export with start_bundle()") from None
    except ValueError as exc:
        raise BundleError(f"{path} is damaged ({exc})", hint="abort this export and start again") from exc


def write_state(staging: Path, state: dict[str, Any]) -> None:
    """Replace the step state atomically (temp file, fsync, rename)."""
    path = layout.state_path(staging)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(state, fh, sort_keys=True, indent=1)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def update_state(staging: Path, **results: Any) -> dict[str, Any]:
    state = read_state(staging)
    state.update(results)
    write_state(staging, state)
    return state


def require(state: dict[str, Any], key: str, step: str) -> Any:
    if state.get(key) is None:
        raise BundleError(f"the export step {step} has not completed in this staging folder",
                          hint=f"run {step}() before finish_bundle()")
    return state[key]


def abort_bundle(staging: str | os.PathLike[str]) -> None:
    """Remove a staging folder (only one whose name marks it as such)."""
    path = Path(staging)
    if not (path.name.startswith(".") and "_tmp-" in path.name):
        raise BundleError(f"{path} is not a staging folder; refusing to delete it")
    shutil.rmtree(path, ignore_errors=True)


def publish(staging: Path, out_dir: Path, stem: str) -> Path:
    """Rename the staging folder to the first free ``stem``, ``stem_2``, ... and return that path.

    A name is reserved with ``mkdir`` (atomic, never overwrites), then the staging folder is renamed
    onto the empty reservation, so an existing bundle is never replaced.
    """
    for candidate in layout.bundle_candidates(out_dir, stem):
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        try:
            os.rename(staging, candidate)
        except OSError:
            candidate.rmdir()
            raise
        fsync_dir(out_dir)
        return candidate
    raise AssertionError("unreachable")  # pragma: no cover
