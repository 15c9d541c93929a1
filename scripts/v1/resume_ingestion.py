"""Clear the source store's freeze flag (on success and on the failure path)."""


def run(ctx):
    ctx.data["frozen"] = ctx.api.resume_ingestion(ctx.data["source"])["paused"]
    ctx.cancel_done("resume_ingestion")
