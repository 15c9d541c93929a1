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

ROOT = Path(__file__).resolve().parents[1]
PROCESSES = ROOT / "processes"


def pin(script: str) -> str:
    return hashlib.sha256((ROOT / script).read_bytes()).hexdigest()


def approval(p: Proc, gateway_col: int, gateway_row: int, go: str, what: str) -> None:
    """The prod/dev approval block: environment gateway, Approver user task, auto-approval, rejection."""
    c = gateway_col
    p.node("Gateway_environment", "xgw", "Environment?", c, gateway_row, default="Flow_dev")
    p.node("Task_approve", "user", f"Approve the {what}", c + 1, 1,
           doc=f"An Approver decides: procos task complete TASK_ID --as USER --approve|--reject. In prod the "
               f"user who started the {what} may not approve it.")
    p.node("Task_auto_approve", "script", "Approve automatically (dev)", c + 1, 2,
           script="scripts/v1/auto_approve.py")
    p.node("Gateway_approved", "xgw", "Approved?", c + 2, 1, default="Flow_rejected")
    p.node("Task_record_rejection", "script", "Record the rejection", c + 3, 1,
           script="scripts/v1/record_rejection.py")
    p.node("Event_rejected", "end", "Rejected", c + 4, 1, outcome="rejected")
    p.flow("Flow_prod", "Gateway_environment", "Task_approve", condition='environment == "prod"', name="prod")
    p.flow("Flow_dev", "Gateway_environment", "Task_auto_approve", name="dev")
    p.flow("Flow_decided", "Task_approve", "Gateway_approved")
    p.flow("Flow_approved", "Gateway_approved", go, condition="approved == True", name="approved")
    p.flow("Flow_rejected", "Gateway_approved", "Task_record_rejection", name="rejected")
    p.flow("Flow_rejection_recorded", "Task_record_rejection", "Event_rejected")
    p.flow("Flow_auto_approved", "Task_auto_approve", go)


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
    p.node("Task_announce", "script", "Emit snapshot_exported", 13, 2, script="scripts/v1/announce_export.py")
    p.node("Event_exported", "end", "Snapshot exported", 14, 2)
    p.chain("x", ["Gateway_attempt", "Task_freeze", "Task_stage", "Task_dump", "Task_package", "Task_checksums",
                  "Gateway_restart"])
    p.flow("Flow_restart", "Gateway_restart", "Gateway_attempt", condition="restart == True",
           name="restart (retry after a failure)", via=loop_back(p, "Gateway_restart", "Gateway_attempt"))
    p.flow("Flow_complete", "Gateway_restart", "Task_unfreeze", name="complete")
    p.chain("y", ["Task_unfreeze", "Task_announce", "Event_exported"])
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
             "environment (dev|prod); optional on_conflict. Out: imported, skipped, artifacts. "
             "Emits import_ready; approval_rejected on rejection.")
    p.variables = [
        Var("bundle", "bundle", "the bundle to import (folder, .tar.zst or .age)", required=True),
        Var("target", "store", "the store to import into (created with the bundle's settings if new)",
            required=True),
        Var("mode", "choice", "append, or replace every record atomically", default='"append"',
            choices="append,replace"),
        Var("on_conflict", "choice", "what an append does with an id the target holds", default='"version"',
            choices="version,error,keep,overwrite"),
    ]
    p.lanes = [("Owner", [0]), ("Approver", [1]), ("System", [2])]
    p.node("Event_requested", "start", "Import requested", 0, 0)
    p.node("Task_check_request", "script", "Check the request", 1, 2, script="scripts/v1/check_request.py")
    p.node("Task_check_package", "script", "Validate the package", 2, 2, script="scripts/v1/check_package.py")
    p.node("Task_verify", "script", "Verify checksums", 3, 2, script="scripts/v1/verify_checksums.py")
    approval(p, 4, 2, "Gateway_go", "import")
    p.node("Gateway_go", "xgw", "Approved", 7, 2)
    p.node("Task_load", "script", "Load vectors", 8, 2, script="scripts/v1/load_vectors.py")
    p.node("Task_register", "script", "Register artifacts", 9, 2, script="scripts/v1/register_artifacts.py")
    p.node("Task_rebuild", "script", "Rebuild search structures", 10, 2, script="scripts/v1/rebuild_search.py")
    p.node("Task_announce", "script", "Emit import_ready", 11, 2, script="scripts/v1/announce_import.py")
    p.node("Event_ready", "end", "Import ready", 12, 2)
    p.chain("i", ["Event_requested", "Task_check_request", "Task_check_package", "Task_verify",
                  "Gateway_environment"])
    p.chain("j", ["Gateway_go", "Task_load", "Task_register", "Task_rebuild", "Task_announce", "Event_ready"])
    return p


def validate_snapshot() -> Proc:
    p = Proc("validate_snapshot", "Validate a snapshot",
             "Variables in: source, target (store URIs), queries (default 20), k (default 10). Out: passed, "
             "validation (the report). Emits validation_passed or validation_failed.")
    p.variables = [
        Var("source", "source", "the source: a store URI or a bundle", required=True),
        Var("target", "store", "the target store", required=True, existing=True),
        Var("queries", "int", "how many sample queries", default="20"),
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
             "pgvector store under out_dir), queries, k. Out: report (drill report JSON path), report_markdown, "
             "bundle, target. Emits dr_drill_completed.")
    p.variables = [
        Var("source", "store", "the store to drill (a store URI)", required=True, existing=True),
        Var("out_dir", "folder", "where the bundle, the scratch store and the report go", required=True),
        Var("scratch", "store", "the restore target (default: a fresh embedded pgvector store in out_dir)"),
        Var("queries", "int", "how many sample queries", default="20"),
        Var("k", "int", "top-k of each query", default="10"),
        Var("recall_floor", "float", "the restored store passes when its recall@k is at least this"),
    ]
    p.node("Event_requested", "start", "Drill started", 0, 0)
    p.node("Task_export", "script", "Export from the source", 1, 0, script="scripts/v1/export_for_drill.py")
    p.node("Task_scratch", "script", "Prepare a scratch target", 2, 0, script="scripts/v1/prepare_scratch.py")
    p.node("Task_restore", "script", "Restore the records", 3, 0,
           script="scripts/v1/restore_scratch.py")
    p.node("Task_restore_artifacts", "script", "Restore the artifacts", 4, 0,
           script="scripts/v1/restore_artifacts.py")
    p.node("Task_rebuild", "script", "Rebuild and tune search", 5, 0, script="scripts/v1/rebuild_search.py")
    p.node("Task_validate", "script", "Validate the restore", 6, 0, script="scripts/v1/sample_retrievals.py")
    p.node("Task_report", "script", "Write the drill report", 7, 0, script="scripts/v1/write_drill_report.py")
    p.node("Task_announce", "script", "Emit dr_drill_completed", 8, 0, script="scripts/v1/announce_drill.py")
    p.node("Gateway_drill", "xgw", "Drill passed?", 9, 0, default="Flow_drill_failed")
    p.node("Event_done", "end", "Drill passed", 10, 0)
    p.node("Event_drill_failed", "end", "Drill failed", 10, 1, outcome="failed")
    p.chain("d", ["Event_requested", "Task_export", "Task_scratch", "Task_restore", "Task_restore_artifacts",
                  "Task_rebuild", "Task_validate", "Task_report", "Task_announce", "Gateway_drill"])
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


BUILDERS = (export_snapshot, import_snapshot, validate_snapshot, simulate_restore, drift_check)


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for build in BUILDERS:
        p = build()
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
