"""Cutover not switched (validation failed, or a step after the freeze failed): the source takes writes again."""


def run(ctx):
    data = ctx.data
    if data.get("frozen") and "switched_at" not in data:
        ctx.api.release_source(data["source"])
        data["frozen"] = False
        ctx.log("the cutover did not switch: the source takes writes again")
    ctx.cancel_done("resume_ingestion")
    data.setdefault("write_pause_seconds", None)
