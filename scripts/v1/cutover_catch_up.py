"""Cutover catch-up round: ship what changed since the last bundle as a delta and apply it to the target.

``lag_ok`` turns true when the round carried fewer than ``max_lag`` changes: the last round, with writes
paused, will then be short.
"""

import os

from engine.errors import WorkflowError

MAX_ROUNDS = 20


def run(ctx):
    data = ctx.data
    delta = ctx.api.ship_delta(data["source"], data["base"], os.path.join(data["work_dir"], "bundles"),
                               data["target"], parent=data["base_id"])
    changes = delta["changes"]
    data["base"], data["base_id"] = delta["path"], delta["snapshot_id"]
    data["rounds"] = [*data.get("rounds", []), {"round": len(data.get("rounds", [])) + 1, "changes": changes,
                                                "seconds": delta["seconds"]}]
    data["lag"] = changes
    data["lag_ok"] = changes < int(data["max_lag"])
    if not data["lag_ok"] and len(data["rounds"]) >= MAX_ROUNDS:
        raise WorkflowError(f"after {MAX_ROUNDS} catch-up rounds the source still changes by {changes} changes per "
                            f"round (max_lag {data['max_lag']}): the writes outpace the copy",
                            hint="raise max_lag (a longer write pause), or lower the write load, then retry")
