"""Emit vector_drift_detected with the counts and the first ids of each list."""


def run(ctx):
    data = ctx.data
    ctx.emit("vector_drift_detected", uri=data["uri"], snapshot=data["snapshot"], checked=data["checked"],
             counts=data["counts"], **{k: data[k][:20] for k in ("drifted", "missing", "unexpected")})
