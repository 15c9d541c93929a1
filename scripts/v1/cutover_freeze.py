"""Cutover: freeze the source (its writes are refused from now on) and note when the write pause began."""


def run(ctx):
    data = ctx.data
    done = ctx.api.freeze_source(data["source"])
    data["frozen_at"] = done["frozen_at"]
    data["frozen"] = True
    ctx.on_cancel("resume_ingestion", uri=data["source"])  # a cancel before the switch gives the writes back
