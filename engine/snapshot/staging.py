"""The staging folder an export is written in, the step state it carries on disk, and its leftovers.

``start_bundle`` creates ``.knowledge_snapshot_YYYYMMDD_HHMMSS_tmp-XXXX`` in the snapshots folder;
each later step (possibly in another process) records its results in ``.export_state.json`` inside
it, and ``finish_bundle`` reads them. A staging folder is hidden and has no manifest, so it never
looks like a finished bundle; ``abort_bundle`` removes it.

The state records the folder's *writer* (:mod:`engine.owner`: host, boot, pid, start time): the
process that created it, taken over by each later step that works in it. A killed export leaves
its staging folder behind (so does a killed ``pack``: a hidden ``.<archive>.tmp-<writer>`` file).
:func:`leftovers` lists them with their age and whether their writer is alive (``snapshot catalog``
shows them), and :func:`remove_stale` removes those whose writer is gone (never a live one);
``start_bundle`` calls it, so the next export into the same folder cleans up. A leftover without a
readable writer record is removed once it is older than :data:`GRACE_SECONDS`.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine import owner
from engine.errors import BundleError
from engine.files import fsync_dir

from . import layout


def fsync_tree_dirs(root: Path) -> None:
    """fsync every folder under ``root`` (deepest first) and ``root`` itself."""
    folders = [Path(dirpath) for dirpath, _, _ in os.walk(root)]
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        fsync_dir(folder)


def start_bundle(out_dir: str | os.PathLike[str], *, now: datetime | None = None) -> Path:
    """Create a staging folder in the snapshots folder ``out_dir`` (created if missing); return it.

    Leftovers of earlier exports into ``out_dir`` whose writer is gone are removed first.
    """
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    remove_stale(out)
    when = (now or datetime.now(UTC)).astimezone(UTC).replace(microsecond=0)
    stem = layout.bundle_stem(when)
    # the writer's token is in the name too: a kill before the state file exists still leaves it known
    staging = Path(tempfile.mkdtemp(prefix=f"{layout.staging_prefix(stem)}{owner.token()}-", dir=out))
    try:
        write_state(staging, {
            "stem": stem,
            "snapshot_id": str(uuid.uuid4()),
            "created_utc": when.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "writer": owner.this_process(kind="export"),
        })
        fsync_dir(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return staging


def claim(staging: str | os.PathLike[str]) -> dict[str, Any]:
    """Record the calling process as the staging folder's writer (a later step, maybe after a restart)."""
    state = read_state(staging)
    me = owner.this_process(kind="export")
    if not owner.same_process(state.get("writer"), me):
        state["writer"] = me
        write_state(Path(staging), state)
    return state


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


def discard(path: str | os.PathLike[str]) -> None:
    """Remove a folder that is, or holds, a bundle, so that a kill halfway never leaves a complete-looking
    bundle with files missing: bundle-named folders are renamed to hidden names first, then deleted."""
    target = Path(path)
    if not target.exists():
        return
    try:
        if layout.is_bundle_name(target.name):
            hidden = target.with_name(f".{target.name}.removing-{uuid.uuid4().hex[:8]}")
            os.rename(target, hidden)
            target = hidden
        for child in list(target.iterdir()):
            if layout.is_bundle_name(child.name) and child.is_dir() and not child.is_symlink():
                os.rename(child, target / f".{child.name}.removing")
    except OSError:
        pass  # removing it all is what matters
    shutil.rmtree(target, ignore_errors=True)


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


GRACE_SECONDS = 3600.0


def leftovers(folder: str | os.PathLike[str], *, now: float | None = None) -> list[dict[str, Any]]:
    """The unfinished exports (staging folders) and packs (temporary archives) in snapshots folder ``folder``.

    Each is ``{"path", "kind": "staging"|"pack", "age_seconds", "writer", "writer_alive"}``, sorted by
    path; ``writer_alive`` is None when it cannot be told (another host, or no readable record).
    """
    root = Path(folder)
    now = time.time() if now is None else now
    found: list[dict[str, Any]] = []
    try:
        children = sorted(root.iterdir())
    except OSError:
        return found
    for child in children:
        if layout.is_staging_name(child.name) and child.is_dir() and not child.is_symlink():
            writer = _writer_of(child)
            if writer is not None:
                alive = owner.alive(writer)
            elif (token := _name_token(child.name)) is not None:
                writer, alive = {"token": token}, owner.token_alive(token)
            else:
                alive = None
            found.append({"path": child.name, "kind": "staging", "age_seconds": _age(child, now),
                          "writer": writer, "writer_alive": alive})
        elif (token := layout.pack_temp_writer(child.name)) is not None and child.is_file():
            found.append({"path": child.name, "kind": "pack", "age_seconds": _age(child, now),
                          "writer": {"token": token}, "writer_alive": owner.token_alive(token)})
    return found


def remove_stale(folder: str | os.PathLike[str], *, now: float | None = None) -> list[dict[str, Any]]:
    """Remove the leftovers in ``folder`` whose writer is gone; return them (as :func:`leftovers` gives them).

    A leftover whose writer is alive (or on another host) is kept; one without a writer record is
    removed once older than :data:`GRACE_SECONDS`.
    """
    removed = []
    for item in leftovers(folder, now=now):
        alive = item["writer_alive"]
        unknown = item["writer"] is None or "token" in item["writer"]
        if alive is False or (alive is None and unknown and item["age_seconds"] > GRACE_SECONDS):
            path = Path(folder) / item["path"]
            if item["kind"] == "staging":
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
            if not path.exists():
                removed.append(item)
    return removed


def _name_token(name: str) -> str | None:
    """The writer token in a staging folder's name (``..._tmp-<host>-<pid>-<start ms>-XXXX``), if any."""
    parts = name.rsplit("_tmp-", 1)[-1].split("-")
    return "-".join(parts[:3]) if len(parts) == 4 else None


def _writer_of(staging: Path) -> dict[str, Any] | None:
    try:
        writer = json.loads(layout.state_path(staging).read_text(encoding="utf-8")).get("writer")
    except (OSError, ValueError, AttributeError):
        return None
    return writer if isinstance(writer, dict) else None


def _age(path: Path, now: float) -> float:
    try:
        return round(max(0.0, now - path.stat().st_mtime), 1)
    except OSError:
        return 0.0
