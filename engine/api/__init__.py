"""The front door: one function per user operation.

The CLI, the BPMN script tasks and the web panel call only these functions. Each opens the store it
is given (or ``$VECTOR_ENDPOINT`` when ``uri`` is None) and closes it before returning. Heavy
libraries (FAISS, psycopg, pyarrow) are imported by the code that needs them, never here.

- stores: :mod:`engine.api.stores` (seed, stats, query, pause/resume)
- snapshots and drills: :mod:`engine.api.snapshots`
- validation and search tuning: :mod:`engine.api.validation`
- drift detection: :mod:`engine.api.drift`
- signing and encryption: :mod:`engine.api.crypto`
- transport and retention (push, pull, list, abort-incomplete, prune): :mod:`engine.api.transport`
"""

from __future__ import annotations

from engine.progress import reporting as report_progress

from .crypto import encrypt_snapshot, sign_file, sign_snapshot, signature_status
from .drift import drift_check
from .settings import deployment_environment, redact, show_config, signing_key
from .snapshots import (
    abort_export,
    bundle_size,
    check_package,
    describe_snapshot,
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
    scratch_store_uri,
    snapshot_catalog,
    start_export,
    verify_snapshot,
    write_drill_report,
)
from .stores import (
    is_paused,
    load_query_vector,
    opened,
    pause_ingestion,
    query_store,
    resume_ingestion,
    seed_store,
    store_stats,
    wait_index,
)
from .transport import abort_incomplete, list_snapshots, prune_snapshots, pull_snapshot, push_snapshot
from .validation import tune_search, validate, validation_report_path

__all__ = [
    "bundle_size",
    "describe_snapshot",
    "deployment_environment",
    "redact",
    "report_progress",
    "show_config",
    "signing_key",
    "abort_export",
    "abort_incomplete",
    "check_package",
    "drift_check",
    "encrypt_snapshot",
    "export_artifacts",
    "export_delta",
    "export_embeddings",
    "export_snapshot",
    "finish_export",
    "import_chain",
    "import_snapshot",
    "is_paused",
    "inspect_snapshot",
    "load_query_vector",
    "list_snapshots",
    "load_vectors",
    "migrate_snapshot",
    "opened",
    "pack_snapshot",
    "pause_ingestion",
    "prune_snapshots",
    "pull_snapshot",
    "push_snapshot",
    "query_store",
    "rebuild_search",
    "register_artifacts",
    "resume_ingestion",
    "scratch_store_uri",
    "snapshot_catalog",
    "seed_store",
    "sign_file",
    "sign_snapshot",
    "signature_status",
    "start_export",
    "store_stats",
    "tune_search",
    "validate",
    "validation_report_path",
    "verify_snapshot",
    "wait_index",
    "write_drill_report",
]
