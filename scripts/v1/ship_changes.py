"""Replication round (replicate_once): ship what changed in source into the location ``to`` (nothing if unchanged)."""

import json


def run(ctx):
    data = ctx.data
    result = ctx.api.replicate_once(data["source"], data["to"], full_every=data.get("full_every", "24h"))
    data["shipped"] = json.loads(json.dumps(result["shipped"], default=str))
    data["lag"] = int(result["lag"])
