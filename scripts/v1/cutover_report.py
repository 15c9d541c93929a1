"""Cutover: write the report (write pause next to the total duration, rounds, validation, monitoring)."""

import time


def run(ctx):
    data = ctx.data
    switched = "switched_at" in data
    monitor = data.get("monitor") or {}
    passed = bool(switched and data.get("passed") and not monitor.get("anomaly_count"))
    report = {
        "instance_id": ctx.instance_id, "source": data["source"], "target": data["target"],
        "endpoint_file": data.get("endpoint_file"), "switched": switched, "record_count": data.get("record_count"),
        "copied": data.get("copied"), "full_copy_seconds": data.get("full_copy_seconds"), "rounds": data.get("rounds", []),
        "final_delta": data.get("final_delta"), "write_pause_seconds": data.get("write_pause_seconds"),
        "total_seconds": round(time.time() - data["started_at"], 3), "validation_passed": bool(data.get("passed")),
        "monitor": monitor, "passed": passed,
    }
    written = ctx.api.write_cutover_report(data["work_dir"], report)
    data["report"] = written["report"]
    data["total_seconds"] = report["total_seconds"]
    data["passed"] = passed
