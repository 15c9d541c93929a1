"""Cutover: ship the last delta (everything acknowledged before the freeze) and apply it to the target."""

import os


def run(ctx):
    data = ctx.data
    delta = ctx.api.ship_delta(data["source"], data["base"], os.path.join(data["work_dir"], "bundles"),
                               data["target"], parent=data["base_id"])
    data["base"], data["base_id"] = delta["path"], delta["snapshot_id"]
    data["final_delta"] = {"changes": delta["changes"], "seconds": delta["seconds"], "bundle": delta["path"]}
