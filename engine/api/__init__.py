"""The front door: one function per user operation.

The CLI, the BPMN script tasks and the web panel call only these functions. Each opens the store it
is given (or ``$VECTOR_ENDPOINT`` when ``uri`` is None) and closes it before returning. Heavy
libraries (FAISS, psycopg, pyarrow) are imported by the code that needs them, never here.

- stores: :mod:`engine.api.stores` (seed, stats, query); the freeze flag: :mod:`engine.api.freeze`
- snapshots: :mod:`engine.api.snapshots`; validation and drills: :mod:`engine.api.drills`
- drift detection: :mod:`engine.api.drift`
"""

from __future__ import annotations

from .drift import drift_check
from .drills import scratch_store_uri, validate, write_drill_report
from .freeze import freeze_holder, is_paused, pause_ingestion, renew_pause, resume_ingestion
from .snapshots import (
    abort_export,
    check_package,
    export_artifacts,
    export_delta,
    export_embeddings,
    export_snapshot,
    finish_export,
    import_chain,
    import_snapshot,
    inspect_snapshot,
    load_vectors,
    migrate_snapshot,
    pack_snapshot,
    rebuild_search,
    register_artifacts,
    remove_stale_staging,
    snapshot_catalog,
    start_export,
    verify_snapshot,
)
from .stores import load_query_vector, opened, query_store, seed_store, store_stats

__all__ = [
    "abort_export",
    "check_package",
    "drift_check",
    "export_artifacts",
    "export_delta",
    "export_embeddings",
    "export_snapshot",
    "finish_export",
    "freeze_holder",
    "import_chain",
    "import_snapshot",
    "is_paused",
    "inspect_snapshot",
    "load_query_vector",
    "load_vectors",
    "migrate_snapshot",
    "opened",
    "pack_snapshot",
    "pause_ingestion",
    "query_store",
    "rebuild_search",
    "register_artifacts",
    "remove_stale_staging",
    "renew_pause",
    "resume_ingestion",
    "scratch_store_uri",
    "snapshot_catalog",
    "seed_store",
    "start_export",
    "store_stats",
    "validate",
    "verify_snapshot",
    "write_drill_report",
]
