"""Cutover: ship the last delta (everything acknowledged before the freeze) and apply it to the target."""

import os
import time


def run(ctx):
    data = ctx.data
    started = time.perf_counter()
    delta = ctx.api.export_delta(data["source"], data["base"], os.path.join(data["work_dir"], "bundles"))
    key = ctx.api.signing_key()
    if key:
        ctx.api.sign_snapshot(delta["path"], key)
    ctx.api.apply_delta(delta["path"], data["target"], parent=data["base_id"])
    data["base"], data["base_id"] = str(delta["path"]), delta["snapshot_id"]
    data["final_delta"] = {"changes": int(delta["upserts"]) + int(delta["deletes"]),
                           "seconds": round(time.perf_counter() - started, 3), "bundle": str(delta["path"])}
