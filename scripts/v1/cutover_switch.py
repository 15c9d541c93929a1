"""Cutover: write VECTOR_ENDPOINT=<target> into endpoint_file and emit cutover_completed; the write pause ends.

The source stays frozen: no write can land on the old store after the switch.
"""

import time


def run(ctx):
    data = ctx.data
    written = ctx.api.write_endpoint(data["endpoint_file"], data["target"])
    data["switched_at"] = time.time()
    data["write_pause_seconds"] = round(data["switched_at"] - data["frozen_at"], 3)
    data["endpoint"] = written["endpoint"]
    ctx.cancel_done("resume_ingestion")  # switched: cancelling now must not give writes back to the old store
    ctx.emit("cutover_completed", source=data["source"], target=data["target"], endpoint_file=data["endpoint_file"],
             write_pause_seconds=data["write_pause_seconds"])
