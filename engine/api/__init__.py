"""The front door: one function per user operation.

The CLI, the BPMN script tasks and the web panel call only these functions. Each opens the store it
is given (or ``$VECTOR_ENDPOINT`` when ``uri`` is None) and closes it before returning. Heavy
libraries (FAISS, psycopg, pyarrow) are imported by the code that needs them, never here.

- stores: :mod:`engine.api.stores` (seed, stats, query); the freeze flag: :mod:`engine.api.freeze`
- snapshots: :mod:`engine.api.snapshots`, imports: :mod:`engine.api.imports`; drills (scratch targets,
  reports, history): :mod:`engine.api.drills`
- validation and search tuning: :mod:`engine.api.validation`
- drift detection: :mod:`engine.api.drift`
- signing and encryption: :mod:`engine.api.crypto`
- transport and retention (push, pull, list, abort-incomplete, prune): :mod:`engine.api.transport`
- replication and point-in-time restore: :mod:`engine.api.replication`
"""

from __future__ import annotations

from engine.progress import reporting as report_progress

from .crypto import encrypt_snapshot, sign_file, sign_snapshot, signature_status
from .cutover import (
    apply_delta,
    compare_answers,
    freeze_source,
    release_source,
    ship_delta,
    write_cutover_report,
    write_endpoint,
)
from .drift import drift_check
from .drills import drill_history, replication_age, scratch_store_uri, write_drill_report
from .freeze import freeze_holder, is_paused, pause_ingestion, renew_pause, resume_ingestion
from .imports import import_chain, import_snapshot, load_vectors, rebuild_search, register_artifacts
from .replication import replicate, replicate_once, restore, restore_plan  # noqa: E402 - uses the names above
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
    inspect_snapshot,
    migrate_snapshot,
    pack_snapshot,
    remove_stale_staging,
    snapshot_catalog,
    start_export,
    verify_snapshot,
)
from .stores import load_query_vector, opened, query_store, seed_store, store_stats, wait_index
from .transport import (
    abort_incomplete,
    fetch_bundle,
    list_snapshots,
    prune_snapshots,
    pull_snapshot,
    push_snapshot,
    remove_fetched,
)
from .validation import tune_search, validate, validation_report_path

__all__ = [
    "fetch_bundle",
    "remove_fetched",
    "bundle_size",
    "describe_snapshot",
    "drill_history",
    "replication_age",
    "deployment_environment",
    "redact",
    "report_progress",
    "show_config",
    "signing_key",
    "abort_export",
    "apply_delta",
    "compare_answers",
    "freeze_source",
    "release_source",
    "ship_delta",
    "write_cutover_report",
    "write_endpoint",
    "abort_incomplete",
    "check_package",
    "drift_check",
    "encrypt_snapshot",
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
    "replicate",
    "replicate_once",
    "restore",
    "restore_plan",
    "remove_stale_staging",
    "renew_pause",
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
