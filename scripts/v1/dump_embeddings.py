"""Dump the source store's records into the staging folder (export_embeddings).

A staging folder that no longer exists was removed by the failure path (this is a retry): skip, and the
"Restart needed?" gateway starts the frozen phase again.
"""

import json
import os


def run(ctx):
    data = ctx.data
    if data.get("restart") or not os.path.isdir(data.get("staging") or ""):
        data["restart"] = True
        return
    result = ctx.api.export_embeddings(data["source"], data["staging"],
                                       compression_level=int(data.get("compression_level", 1)))
    data["embeddings"] = json.loads(json.dumps(result, default=str))
