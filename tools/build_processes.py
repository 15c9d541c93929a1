"""Regenerate the product BPMN files in processes/ (with diagrams, lanes and script pins).

Run ``python tools/build_processes.py`` after changing a script under ``scripts/``: the ``procos:sha256``
pins are computed here from the script bytes. ``--check`` exits 1 when a file on disk differs from what
would be generated (stale pin or hand edit). The output is plain BPMN 2.0 that opens in bpmn.io and
Camunda Modeler; editing it there is fine too, as long as every pin is kept current.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

from bpmn_model import Boundary, Proc, Var, loop_back, render  # the model lives beside this file
from continuity_processes import cutover, replicate
from process_parts import approval

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ROOT / "processes"


def pin(script: str) -> str:
    return hashlib.sha256((ROOT / script).read_bytes()).hexdigest()


def export_snapshot() -> Proc:
    p = Proc("export_snapshot", "Export a snapshot",
             "Variables in: source (store URI), out_dir, environment (dev|prod); optional pack (bool), "
             "artifacts_dir, compression_level. Out: bundle (bundle path), snapshot_id, content_hash, "
             "record_count. Emits snapshot_exported; approval_rejected on rejection; process_failed on failure.")
    p.variables = [
        Var("source", "store", "the store to export (a store URI)", required=True, existing=True),
        Var("out_dir", "folder", "the snapshots folder the bundle is written into", required=True),
        Var("artifacts_dir", "path", "a folder of extra knowledge artifacts to include"),
        Var("pack", "bool", "also write the reproducible .tar.zst", default="false"),
        Var("compression_level", "int", "zstd level of the Parquet shards", default="1"),
        Var("destination", "s3url", "also push the bundle to this S3 location (s3://BUCKET/PREFIX)", default='""'),
    ]
    p.lanes = [("Owner", [0]), ("Approver", [1]), ("System", [2, 3])]
    p.node("Event_requested", "start", "Export requested", 0, 0)
    p.node("Task_check_request", "script", "Check the request", 1, 0, script="scripts/v1/check_request.py")
    p.chain("r", ["Event_requested", "Task_check_request", "Gateway_environment"])
    approval(p, 2, 0, "Gateway_attempt", "export")
    p.node("Gateway_attempt", "xgw", "Export attempt", 5, 2)
    p.node("Task_freeze", "script", "Set the freeze flag", 6, 2, script="scripts/v1/freeze_ingestion.py")
    p.node("Task_stage", "script", "Open a staging folder", 7, 2, script="scripts/v1/start_staging.py")
    p.node("Task_dump", "script", "Dump embeddings", 8, 2, script="scripts/v1/dump_embeddings.py")
    p.node("Task_package", "script", "Package artifacts", 9, 2, script="scripts/v1/package_artifacts.py")
    p.node("Task_checksums", "script", "Compute checksums", 10, 2, script="scripts/v1/compute_checksums.py")
    p.node("Gateway_restart", "xgw", "Restart needed?", 11, 2, default="Flow_complete")
    p.node("Task_unfreeze", "script", "Clear the freeze flag", 12, 2, script="scripts/v1/resume_ingestion.py")
    p.node("Gateway_push", "xgw", "Destination given?", 13, 2, default="Flow_no_push")
    p.node("Task_push", "script", "Push the bundle", 14, 1, script="scripts/v1/push_bundle.py")
    p.node("Task_announce", "script", "Emit snapshot_exported", 15, 2, script="scripts/v1/announce_export.py")
    p.node("Event_exported", "end", "Snapshot exported", 16, 2)
    p.chain("x", ["Gateway_attempt", "Task_freeze", "Task_stage", "Task_dump", "Task_package", "Task_checksums",
                  "Gateway_restart"])
    p.flow("Flow_restart", "Gateway_restart", "Gateway_attempt", condition="restart == True",
           name="restart (retry after a failure)", via=loop_back(p, "Gateway_restart", "Gateway_attempt"))
    p.flow("Flow_complete", "Gateway_restart", "Task_unfreeze", name="complete")
    p.flow("Flow_unfrozen", "Task_unfreeze", "Gateway_push")
    p.flow("Flow_push", "Gateway_push", "Task_push", condition='destination != ""', name="push")
    p.flow("Flow_no_push", "Gateway_push", "Task_announce", name="no destination")
    p.flow("Flow_pushed", "Task_push", "Task_announce")
    p.flow("Flow_announced", "Task_announce", "Event_exported")
    # the error path: any frozen-phase failure clears the flag and removes the staging folder
    p.errors = [("Error_export_failed", "export_failed")]
    p.node("Gateway_failed", "xgw", "Export failed", 11, 3)
    p.node("Task_abort", "script", "Remove the staging folder", 12, 3, script="scripts/v1/abort_staging.py")
    p.node("Task_clear_after_failure", "script", "Clear the freeze flag", 13, 3,
           script="scripts/v1/resume_ingestion.py")
    p.node("Event_failed", "errend", "Export failed", 14, 3)
    for task in ("Task_stage", "Task_dump", "Task_package", "Task_checksums"):
        b = f"Boundary_{task[5:]}_failed"
        p.boundaries.append(Boundary(b, "Script failed", task))
        p.flow(f"Flow_{task[5:]}_failed", b, "Gateway_failed")
    p.chain("z", ["Gateway_failed", "Task_abort", "Task_clear_after_failure", "Event_failed"])
    return p


def import_snapshot() -> Proc:
    p = Proc("import_snapshot", "Import a snapshot",
             "Variables in: bundle (path), target (store URI), mode (append|replace, default append), "
             "environment (dev|prod); optional on_conflict, identity, jobs. Out: imported, skipped, artifacts. "
             "Emits import_ready; approval_rejected on rejection.")
    p.variables = [
        Var("bundle", "bundle", "the bundle to import (folder, .tar.zst or .age, or s3://BUCKET/PREFIX/NAME)",
            required=True),
        Var("target", "store", "the store to import into (created with the bundle's settings if new)",
            required=True),
        Var("mode", "choice", "append, or replace every record atomically", default='"append"',
            choices="append,replace"),
        Var("on_conflict", "choice", "what an append does with an id the target holds", default='"version"',
            choices="version,error,keep,overwrite"),
        Var("identity", "path", "the age identity file that opens an encrypted .age bundle"),
        Var("jobs", "int", "shards verified at a time (default min(4, cpus)); into a new or empty pgvector store "
            "(or a replace) also the connections that load side by side, in one commit (default 1, at most 16)"),
    ]
    p.lanes = [("Owner", [0]), ("Approver", [1]), ("System", [2])]
    p.node("Event_requested", "start", "Import requested", 0, 0)
    p.node("Task_check_request", "script", "Check the request", 1, 2, script="scripts/v1/check_request.py")
    p.node("Gateway_remote", "xgw", "Bundle in S3?", 2, 2, default="Flow_local")
    p.node("Task_fetch", "script", "Fetch the bundle", 3, 3, script="scripts/v1/fetch_bundle.py")
    p.node("Task_check_package", "script", "Validate the package", 4, 2, script="scripts/v1/check_package.py")
    p.node("Task_verify", "script", "Verify checksums", 5, 2, script="scripts/v1/verify_checksums.py")
    approval(p, 6, 2, "Gateway_go", "import")
    p.node("Gateway_go", "xgw", "Approved", 9, 2)
    p.node("Task_load", "script", "Load vectors", 10, 2, script="scripts/v1/load_vectors.py")
    p.node("Task_register", "script", "Register artifacts", 11, 2, script="scripts/v1/register_artifacts.py")
    p.node("Task_rebuild", "script", "Rebuild search structures", 12, 2, script="scripts/v1/rebuild_search.py")
    p.node("Task_remove_fetched", "script", "Remove the fetched copy", 13, 2, script="scripts/v1/remove_fetched.py")
    p.node("Task_announce", "script", "Emit import_ready", 14, 2, script="scripts/v1/announce_import.py")
    p.node("Event_ready", "end", "Import ready", 15, 2)
    p.chain("i", ["Event_requested", "Task_check_request", "Gateway_remote"])
    p.flow("Flow_remote", "Gateway_remote", "Task_fetch", condition="bundle_remote == True", name="s3://")
    p.flow("Flow_local", "Gateway_remote", "Task_check_package", name="local")
    p.flow("Flow_fetched", "Task_fetch", "Task_check_package")
    p.chain("k", ["Task_check_package", "Task_verify", "Gateway_environment"])
    p.chain("j", ["Gateway_go", "Task_load", "Task_register", "Task_rebuild", "Task_remove_fetched", "Task_announce",
                  "Event_ready"])
    return p


def check_import() -> Proc:
    p = Proc("check_import", "Check an import",
             "Variables in: bundle, target, mode, on_conflict; optional identity (.age bundles). Out: verification "
             "(every problem, the signature), plan (the dry run: would_insert, would_replace, ...), passed, refusal. "
             "Writes nothing; the web panel shows it before anyone presses Import.")
    p.variables = [
        Var("bundle", "bundle", "the bundle to check (folder, .tar.zst or .age)", required=True),
        Var("target", "store", "the store it would be imported into (not created)", required=True),
        Var("mode", "choice", "append, or replace every record", default='"append"', choices="append,replace"),
        Var("on_conflict", "choice", "what an append does with an id the target holds", default='"version"',
            choices="version,error,keep,overwrite"),
        Var("identity", "path", "the age identity file that opens an encrypted .age bundle"),
    ]
    p.lanes = [("Owner", [0]), ("System", [1, 2])]
    p.node("Event_requested", "start", "Check requested", 0, 0)
    p.node("Task_check", "script", "Verify and plan the import", 1, 1, script="scripts/v1/check_import.py")
    p.node("Gateway_passed", "xgw", "Bundle passed?", 2, 1, default="Flow_refused")
    p.node("Event_passed", "end", "Import can go ahead", 3, 1)
    p.node("Event_refused", "end", "Import would be refused", 3, 2, outcome="failed")
    p.chain("c", ["Event_requested", "Task_check", "Gateway_passed"])
    p.flow("Flow_passed", "Gateway_passed", "Event_passed", condition="passed == True", name="passed")
    p.flow("Flow_refused", "Gateway_passed", "Event_refused", name="refused")
    return p


def validate_snapshot() -> Proc:
    p = Proc("validate_snapshot", "Validate a snapshot",
             "Variables in: source, target (store URIs), queries (default 100), k (default 10). Out: passed, "
             "validation (the report). Emits validation_passed or validation_failed.")
    p.variables = [
        Var("source", "source", "the source: a store URI or a bundle", required=True),
        Var("target", "store", "the target store", required=True, existing=True),
        Var("queries", "int", "how many sample queries", default="100"),
        Var("k", "int", "top-k of each query", default="10"),
        Var("recall_floor", "float", "the target passes when its recall@k is at least this (default 0.95)"),
        Var("recall_vs_source", "float", "or: when its recall is at least the source's minus this tolerance"),
        Var("queries_file", "path", "a .npy file of (n, d) float32 queries from real traffic"),
    ]
    p.node("Event_requested", "start", "Validation requested", 0, 0)
    p.node("Task_sample", "script", "Sample retrievals", 1, 0, script="scripts/v1/sample_retrievals.py")
    p.node("Gateway_quality", "xgw", "Quality threshold met?", 2, 0, default="Flow_failed")
    p.node("Task_passed", "script", "Emit validation_passed", 3, 0, script="scripts/v1/announce_validation.py")
    p.node("Event_passed", "end", "Validation passed", 4, 0)
    p.node("Task_failed", "script", "Emit validation_failed", 3, 1, script="scripts/v1/announce_validation.py")
    p.node("Event_failed", "end", "Validation failed", 4, 1, outcome="failed")
    p.chain("v", ["Event_requested", "Task_sample", "Gateway_quality"])
    p.flow("Flow_passed", "Gateway_quality", "Task_passed", condition="passed == True", name="passed")
    p.flow("Flow_failed", "Gateway_quality", "Task_failed", name="failed")
    p.flow("Flow_passed_done", "Task_passed", "Event_passed")
    p.flow("Flow_failed_done", "Task_failed", "Event_failed")
    return p


def simulate_restore() -> Proc:
    p = Proc("simulate_restore", "Disaster-recovery drill",
             "Variables in: source (store URI), out_dir; optional scratch (store URI; default a fresh embedded "
             "pgvector store under out_dir), queries, k, replica. Out: report (drill report JSON path), "
             "report_markdown, bundle, target, rto_seconds, rpo_seconds. Emits dr_drill_completed.")
    p.variables = [
        Var("source", "store", "the store to drill (a store URI)", required=True, existing=True),
        Var("out_dir", "folder", "where the bundle, the scratch store and the report go", required=True),
        Var("scratch", "store", "the restore target (default: a fresh embedded pgvector store in out_dir)"),
        Var("queries", "int", "how many sample queries", default="100"),
        Var("k", "int", "top-k of each query", default="10"),
        Var("recall_floor", "float", "the restored store passes when its recall@k is at least this"),
        Var("destination", "s3url", "also push the drill's bundle to this S3 location", default='""'),
        Var("replica", "string", "the replication location of the source: the report's rpo_seconds is the age "
            "of the newest change shipped there"),
    ]
    p.node("Event_requested", "start", "Drill started", 0, 0)
    p.node("Task_export", "script", "Export from the source", 1, 0, script="scripts/v1/export_for_drill.py")
    p.node("Gateway_push", "xgw", "Destination given?", 2, 0, default="Flow_no_push")
    p.node("Task_push", "script", "Push the bundle", 3, 1, script="scripts/v1/push_bundle.py")
    p.node("Task_scratch", "script", "Prepare a scratch target", 4, 0, script="scripts/v1/prepare_scratch.py")
    p.node("Task_restore", "script", "Restore the records", 5, 0,
           script="scripts/v1/restore_scratch.py")
    p.node("Task_restore_artifacts", "script", "Restore the artifacts", 6, 0,
           script="scripts/v1/restore_artifacts.py")
    p.node("Task_rebuild", "script", "Rebuild and tune search", 7, 0, script="scripts/v1/rebuild_search.py")
    p.node("Task_validate", "script", "Validate the restore", 8, 0, script="scripts/v1/sample_retrievals.py")
    p.node("Task_report", "script", "Write the drill report", 9, 0, script="scripts/v1/write_drill_report.py")
    p.node("Task_announce", "script", "Emit dr_drill_completed", 10, 0, script="scripts/v1/announce_drill.py")
    p.node("Gateway_drill", "xgw", "Drill passed?", 11, 0, default="Flow_drill_failed")
    p.node("Event_done", "end", "Drill passed", 12, 0)
    p.node("Event_drill_failed", "end", "Drill failed", 12, 1, outcome="failed")
    p.chain("d", ["Event_requested", "Task_export", "Gateway_push"])
    p.flow("Flow_push", "Gateway_push", "Task_push", condition='destination != ""', name="push")
    p.flow("Flow_no_push", "Gateway_push", "Task_scratch", name="no destination")
    p.flow("Flow_pushed", "Task_push", "Task_scratch")
    p.chain("e", ["Task_scratch", "Task_restore", "Task_restore_artifacts", "Task_rebuild", "Task_validate",
                  "Task_report", "Task_announce", "Gateway_drill"])
    p.flow("Flow_drill_passed", "Gateway_drill", "Event_done", condition="passed == True", name="passed")
    p.flow("Flow_drill_failed", "Gateway_drill", "Event_drill_failed", name="failed")
    return p


def drift_check() -> Proc:
    p = Proc("drift_check", "Vector drift check",
             "Variables in: uri (store URI), snapshot (bundle path); optional sample (N random records instead "
             "of all), seed. Out: drift, drifted, missing, unexpected, checked, counts. Emits "
             "vector_drift_detected when anything drifted. Meant to be started by a scheduler.")
    p.variables = [
        Var("uri", "store", "the store to watch (a store URI)", required=True, existing=True),
        Var("snapshot", "bundle", "the bundle it should match", required=True),
        Var("sample", "int", "check N random records instead of all"),
        Var("seed", "int", "the sample's random seed", default="0"),
    ]
    p.node("Event_requested", "start", "Drift check due", 0, 0)
    p.node("Task_check", "script", "Hash and compare vectors", 1, 0, script="scripts/v1/check_drift.py")
    p.node("Gateway_drift", "xgw", "Drift found?", 2, 0, default="Flow_clean")
    p.node("Task_announce", "script", "Emit vector_drift_detected", 3, 0, script="scripts/v1/announce_drift.py")
    p.node("Event_drift", "end", "Drift reported", 4, 0, outcome="drift")
    p.node("Event_clean", "end", "No drift", 3, 1)
    p.chain("c", ["Event_requested", "Task_check", "Gateway_drift"])
    p.flow("Flow_drift", "Gateway_drift", "Task_announce", condition="drift == True", name="drift")
    p.flow("Flow_clean", "Gateway_drift", "Event_clean", name="no drift")
    p.flow("Flow_drift_done", "Task_announce", "Event_drift")
    return p


BUILDERS = (export_snapshot, import_snapshot, check_import, validate_snapshot, simulate_restore, drift_check, cutover,
            replicate)
DEFAULT_TIMEOUTS = {"export_snapshot": "6h", "import_snapshot": "6h", "check_import": "2h", "validate_snapshot": "2h",
                    "simulate_restore": "12h", "drift_check": "2h"}


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for build in BUILDERS:
        p = build()
        p.timeout = p.timeout or DEFAULT_TIMEOUTS.get(p.id)
        path = PROCESSES / f"{p.id}.bpmn"
        text = render(p, pin)
        if check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path))
            continue
        path.write_text(text, encoding="utf-8")
        print("wrote", path.relative_to(ROOT))
    for path in stale:
        print(f"stale: {path} (run python tools/build_processes.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
