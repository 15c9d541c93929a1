"""DR drill step 6: write the drill report (JSON, and Markdown beside it) into out_dir; sets ``report``.

``rto_seconds``: from the start of the restore until the validated target answers (now). ``rpo_seconds``:
the age of the newest change shipped to the replication location ``replica`` (null without one).
"""

import time


def run(ctx):
    data = ctx.data
    report = {
        "instance_id": ctx.instance_id, "source": data["source"], "scratch": data["target"],
        "bundle": data["bundle"], "snapshot_id": data.get("snapshot_id"),
        "record_count": data["record_count"], "restored": data.get("restored"), "artifacts": data.get("artifacts"),
        "export_seconds": data.get("export_seconds"), "restore_seconds": data["restore_seconds"],
        "search_tuning": (data.get("rebuild") or {}).get("search_tuning"),
        "validation": data["validation"], "passed": bool(data.get("passed")),
        "rto_seconds": round(time.time() - data["restore_started_at"], 3) if data.get("restore_started_at") else None,
        "rpo_seconds": ctx.api.replication_age(data["replica"], data["source"]) if data.get("replica") else None,
        "replica": data.get("replica"),
    }
    data["rto_seconds"], data["rpo_seconds"] = report["rto_seconds"], report["rpo_seconds"]
    written = ctx.api.write_drill_report(data["out_dir"], report)
    data["report"] = str(written["report"])
    data["report_markdown"] = str(written["markdown"])
    key = ctx.api.signing_key()
    if key:  # a signed report: gpg --verify dr_drill_X.json.asc dr_drill_X.json
        data["report_signature"] = ctx.api.sign_file(data["report"], key)["signature"]
