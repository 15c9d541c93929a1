"""DR drill step 1: export the source into a bundle under out_dir (export_snapshot, one shot)."""

import os


def run(ctx):
    data = ctx.data
    result = ctx.api.export_snapshot(data["source"], os.path.join(data["out_dir"], "bundles"),
                                     source_env=data.get("environment", "dev"))
    data["bundle"] = str(result["path"])
    data["snapshot_id"] = result["snapshot_id"]
    data["record_count"] = int(result["record_count"])
    data["export_seconds"] = result.get("seconds")
