"""Copy the source's knowledge artifacts into the staging folder (export_artifacts).

Skips (restart) when the staging folder was removed by the failure path, like dump_embeddings.
"""

import json
import os


def run(ctx):
    data = ctx.data
    if data.get("restart") or not os.path.isdir(data.get("staging") or ""):
        data["restart"] = True
        return
    result = ctx.api.export_artifacts(data["source"], data["staging"], artifacts_dir=data.get("artifacts_dir"))
    data["artifacts"] = json.loads(json.dumps(result, default=str))
