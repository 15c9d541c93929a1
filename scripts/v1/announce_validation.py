"""Emit validation_passed or validation_failed (by ``passed``) with the comparison's figures."""


def run(ctx):
    data = ctx.data
    report = data.get("validation") or {}
    ctx.emit("validation_passed" if data.get("passed") else "validation_failed", source=data["source"],
             target=data["target"], queries=report.get("queries"), mean_overlap=report.get("mean_overlap"),
             failures=len(report.get("failures") or []))
