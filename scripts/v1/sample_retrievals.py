"""Run sample retrievals on source and target and compare them (validate); sets ``passed``."""

import json


def run(ctx):
    data = ctx.data
    result = ctx.api.validate(data["source"], data["target"], queries=int(data.get("queries", 20)),
                              k=int(data.get("k", 10)))
    data["validation"] = json.loads(json.dumps(result, default=str))
    data["passed"] = bool(result["passed"])
