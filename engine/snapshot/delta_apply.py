"""Apply one delta bundle to a store that already holds its parent's state (a replica being caught up).

Used by the cutover: the target got the full bundle, then each round's delta. The delta is verified
(and its signature checked, per ``access``) before anything is written; its upserts overwrite (the
target is a copy of the source, whose state they are), its deletes delete, its artifact changes apply.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from engine.errors import LineageError
from engine.records import OnConflict

from . import layout, reader
from .access import BundleAccess
from .delta_checks import iter_changes
from .importer import open_current

if TYPE_CHECKING:
    from engine.repository import VectorRepository


def apply_delta(repo: VectorRepository, path: str | os.PathLike[str], *, parent: str | None = None,
                access: BundleAccess | None = None, batch_size: int = 10_000) -> dict[str, Any]:
    """Verify delta ``path`` and apply it to ``repo``; ``parent`` (a snapshot id) must be its parent.

    Returns ``{"snapshot_id", "content_hash", "upserts", "deletes", "artifacts", "removed_artifacts"}``.
    """
    with open_current(path, access=access) as (root, doc, _):
        if doc.get("kind") != "delta":
            raise LineageError(f"{path} is a full bundle, not a delta", hint="import it with procos snapshot import")
        if parent is not None and doc["parent"]["snapshot_id"] != parent:
            raise LineageError(f"{path} builds on {doc['parent']['snapshot_id']}, but the store holds {parent}",
                               hint="apply the deltas in order, each on its parent")
        written = repo.bulk_load(reader.iter_batches(root, doc, batch_size), OnConflict.OVERWRITE)
        deletes = [line["id"] for _, line in iter_changes(layout.changes_path(root)) if line and line["op"] == "delete"]
        gone = repo.delete(deletes) if deletes else 0
        files = {rel: sha for rel, sha in reader.listed_files(root).items() if layout.artifact_kind(rel) is not None}
        for rel in files:
            repo.artifacts.write(rel, layout.member(root, rel).read_bytes())
        for rel in doc.get("removed_artifacts", []):
            repo.artifacts.delete(rel)
        return {"snapshot_id": doc["snapshot_id"], "content_hash": doc["content_hash"], "upserts": written.written,
                "deletes": gone, "artifacts": len(files), "removed_artifacts": len(doc.get("removed_artifacts", []))}
