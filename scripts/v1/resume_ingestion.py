"""Clear the source store's freeze flag (on success and on the failure path), unless it was paused before.

A store an operator paused before the export is left paused (``paused_before``): the export leaves the
flag as it found it, on every path.
"""


def run(ctx):
    data = ctx.data
    if data.get("paused_before"):
        ctx.log("left the store paused, as it was before the export")
        data["frozen"] = True
    else:
        done = ctx.api.resume_ingestion(data["source"], holder=ctx.api.freeze_holder(ctx.instance_id))
        data["frozen"] = done["paused"]
    ctx.cancel_done("resume_ingestion")
