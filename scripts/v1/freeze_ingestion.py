"""Set the source store's freeze flag (writes are refused until it is cleared); count the attempt.

Every pass through the frozen phase starts here, including a restart after a retried failure.
"""

from engine.errors import WorkflowError

MAX_ATTEMPTS = 5


def run(ctx):
    attempt = int(ctx.data.get("attempt", 0)) + 1
    if attempt > MAX_ATTEMPTS:
        raise WorkflowError(f"the export was restarted {MAX_ATTEMPTS} times without completing",
                            hint="something keeps clearing the freeze flag or removing the staging folder; "
                                 "find it, then start a new export")
    ctx.data["attempt"] = attempt
    ctx.data["restart"] = False
    ctx.data["frozen"] = ctx.api.pause_ingestion(ctx.data["source"])["paused"]
    ctx.on_cancel("resume_ingestion", uri=ctx.data["source"])  # a cancel must not leave the store frozen
