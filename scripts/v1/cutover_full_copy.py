"""Cutover step 2: full export of the live source (it keeps taking writes) and import into the target."""

import os
import time


def run(ctx):
    data = ctx.data
    started = time.perf_counter()
    exported = ctx.api.export_snapshot(data["source"], os.path.join(data["work_dir"], "bundles"))
    key = ctx.api.signing_key()
    if key:  # prod imports need a good signature
        ctx.api.sign_snapshot(exported["path"], key)
    imported = ctx.api.import_snapshot(exported["path"], data["target"], mode="replace")
    data["base"] = str(exported["path"])
    data["base_id"] = exported["snapshot_id"]
    data["copied"] = int(imported["imported"])
    data["full_copy_seconds"] = round(time.perf_counter() - started, 3)
