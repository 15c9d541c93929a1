"""Cutover step 1: check the request and fill in defaults (work_dir, max_lag, monitor_seconds); start the clock."""

import os
import time

from engine.errors import InvalidInput


def run(ctx):
    data = ctx.data
    if data["source"] == data["target"]:
        raise InvalidInput("the cutover's source and target are the same store", hint="give the new store as target")
    data.setdefault("max_lag", 1000)
    data.setdefault("monitor_seconds", 900)
    data["work_dir"] = data.get("work_dir") or os.path.join(str(ctx.home), "cutover", ctx.instance_id)
    data["started_at"] = time.time()
    data["record_count"] = int(ctx.api.store_stats(data["source"])["count"])
    data["rounds"] = []
