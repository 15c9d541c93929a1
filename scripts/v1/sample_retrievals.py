"""Run sample retrievals on source and target and compare them (validate); sets ``passed``."""

import json


def run(ctx):
    data = ctx.data
    floor, vs_source = data.get("recall_floor"), data.get("recall_vs_source")
    result = ctx.api.validate(data["source"], data["target"], queries=int(data.get("queries", 100)),
                              k=int(data.get("k", 10)), recall_floor=float(floor) if floor is not None else None,
                              recall_vs_source=float(vs_source) if vs_source is not None else None,
                              queries_file=data.get("queries_file"))
    data["validation"] = json.loads(json.dumps(result, default=str))
    data["passed"] = bool(result["passed"])
