"""The continuity processes (``cutover``, ``replicate``) that ``tools/build_processes.py`` generates."""

from __future__ import annotations

from bpmn_model import Boundary, Proc, Var, loop_back
from process_parts import approval


def cutover() -> Proc:
    p = Proc("cutover", "Minimal-downtime cutover",
             "Variables in: source, target (store URIs), endpoint_file; optional max_lag (default 1000 changes), "
             "monitor_seconds (default 900), work_dir. Out: write_pause_seconds, report, passed. Full copy and "
             "delta catch-up rounds while the source takes writes; then freeze, last delta, validate, switch the "
             "endpoint (emits cutover_completed), monitor. The source stays frozen after the switch.")
    p.timeout = "12h"
    p.variables = [
        Var("source", "store", "the live store to move (a store URI)", required=True, existing=True),
        Var("target", "store", "the new store (replaced by the source's records)", required=True),
        Var("endpoint_file", "folder", "the env file whose VECTOR_ENDPOINT= line is switched to the target",
            required=True),
        Var("max_lag", "int", "freeze once a catch-up round carries fewer changes than this", default="1000"),
        Var("monitor_seconds", "int", "how long to compare sample queries after the switch", default="900"),
        Var("work_dir", "folder", "where the bundles and the report go (default PROCOS_HOME/cutover/ID)"),
        Var("queries", "int", "sample queries of the validation and of each monitoring check", default="20"),
        Var("k", "int", "top-k of each query", default="10"),
    ]
    p.lanes = [("Owner", [0]), ("Approver", [1]), ("System", [2, 3, 4])]
    p.node("Event_requested", "start", "Cutover requested", 0, 0)
    p.node("Task_check_request", "script", "Check the request", 1, 0, script="scripts/v1/cutover_check.py")
    p.chain("r", ["Event_requested", "Task_check_request", "Gateway_environment"])
    approval(p, 2, 0, "Task_full_copy", "cutover")
    p.node("Task_full_copy", "script", "Full export and import", 5, 2, script="scripts/v1/cutover_full_copy.py")
    p.node("Task_catch_up", "script", "Delta catch-up round", 6, 2, script="scripts/v1/cutover_catch_up.py")
    p.node("Gateway_lag", "xgw", "Lag small?", 7, 2, default="Flow_lag_large")
    p.node("Task_freeze", "script", "Freeze the source", 8, 2, script="scripts/v1/cutover_freeze.py")
    p.node("Task_final_delta", "script", "Ship and import the last delta", 9, 2,
           script="scripts/v1/cutover_final_delta.py")
    p.node("Task_validate", "script", "Validate the target", 10, 2, script="scripts/v1/sample_retrievals.py")
    p.node("Gateway_valid", "xgw", "Validation passed?", 11, 2, default="Flow_invalid")
    p.node("Task_switch", "script", "Switch the endpoint", 12, 2, script="scripts/v1/cutover_switch.py")
    p.node("Task_monitor", "script", "Monitor source and target", 13, 2, script="scripts/v1/cutover_monitor.py")
    p.node("Task_report", "script", "Write the cutover report", 14, 2, script="scripts/v1/cutover_report.py")
    p.node("Gateway_passed", "xgw", "Cutover passed?", 15, 2, default="Flow_anomalies")
    p.node("Event_done", "end", "Cut over", 16, 2)
    p.node("Event_anomalies", "end", "Cut over with anomalies", 16, 3, outcome="failed")
    p.chain("c", ["Task_full_copy", "Task_catch_up", "Gateway_lag"])
    p.flow("Flow_lag_small", "Gateway_lag", "Task_freeze", condition="lag_ok == True", name="lag small")
    p.flow("Flow_lag_large", "Gateway_lag", "Task_catch_up", name="another round",
           via=loop_back(p, "Gateway_lag", "Task_catch_up"))
    p.chain("f", ["Task_freeze", "Task_final_delta", "Task_validate", "Gateway_valid"])
    p.flow("Flow_valid", "Gateway_valid", "Task_switch", condition="passed == True", name="passed")
    p.chain("s", ["Task_switch", "Task_monitor", "Task_report", "Gateway_passed"])
    p.flow("Flow_passed", "Gateway_passed", "Event_done", condition="passed == True", name="passed")
    p.flow("Flow_anomalies", "Gateway_passed", "Event_anomalies", name="anomalies")
    # validation failed: not switched, the source takes writes again
    p.node("Task_release", "script", "Give the source its writes back", 12, 4, script="scripts/v1/cutover_release.py")
    p.node("Task_report_failed", "script", "Write the cutover report", 13, 4, script="scripts/v1/cutover_report.py")
    p.node("Event_not_switched", "end", "Not switched", 14, 4, outcome="failed")
    p.flow("Flow_invalid", "Gateway_valid", "Task_release", name="failed")
    p.chain("n", ["Task_release", "Task_report_failed", "Event_not_switched"])
    # a step after the freeze failed: the source takes writes again
    p.errors = [("Error_cutover_failed", "cutover_failed")]
    p.node("Task_release_after_failure", "script", "Give the source its writes back", 10, 3,
           script="scripts/v1/cutover_release.py")
    p.node("Event_failed", "errend", "Cutover failed", 11, 3)
    for task in ("Task_final_delta", "Task_validate"):
        b = f"Boundary_{task[5:]}_failed"
        p.boundaries.append(Boundary(b, "Script failed", task))
        p.flow(f"Flow_{task[5:]}_failed", b, "Task_release_after_failure")
    p.flow("Flow_released", "Task_release_after_failure", "Event_failed")
    return p


def replicate() -> Proc:
    p = Proc("replicate", "Replicate a store",
             "Variables in: source (store URI), to (a snapshots folder or s3://BUCKET/PREFIX); optional full_every "
             "(default 24h). Ships a full bundle or a delta of what changed (nothing when unchanged). Meant for a "
             "schedule entry (every: 30s ... 1h).")
    p.timeout = "6h"
    p.variables = [
        Var("source", "store", "the store to protect (a store URI)", required=True, existing=True),
        Var("to", "string", "the location: a snapshots folder or s3://BUCKET/PREFIX", required=True),
        Var("full_every", "string", "ship a new full bundle this often", default='"24h"'),
    ]
    p.node("Event_due", "start", "Replication due", 0, 0)
    p.node("Task_ship", "script", "Ship the changes", 1, 0, script="scripts/v1/ship_changes.py")
    p.node("Event_done", "end", "Shipped", 2, 0)
    p.chain("p", ["Event_due", "Task_ship", "Event_done"])
    return p
