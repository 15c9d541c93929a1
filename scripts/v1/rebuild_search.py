"""Rebuild the target's search structures (fold logs, rebuild indexes) so it serves the new records."""

import json


def run(ctx):
    ctx.data["rebuild"] = json.loads(json.dumps(ctx.api.rebuild_search(ctx.data["target"]), default=str))
