"""Compare the store with a bundle's vector hashes (drift_check); sets ``drift`` and the id lists."""


def run(ctx):
    data = ctx.data
    sample = data.get("sample")
    result = ctx.api.drift_check(data["uri"], data["snapshot"], sample=int(sample) if sample else None,
                                 seed=int(data.get("seed", 0)), instance_id=ctx.instance_id, emit=False)
    data["drift"] = bool(result["drift"])
    data["checked"] = int(result["checked"])
    data["counts"] = result["counts"]
    for key in ("drifted", "missing", "unexpected"):
        data[key] = list(result[key])
