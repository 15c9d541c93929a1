"""Set the source store's freeze flag (writes are refused until it is cleared); count the attempt.

Every pass through the frozen phase starts here, including a restart after a retried failure. A store
that was already paused before the export (an operator's ``procos store pause``) is left as it was
found: the export neither takes over nor clears that pause (``paused_before``). The export's own freeze
is *leased*, held by this instance: the runner renews it while it works, and a runner that dies leaves
it stale (cleared by the next writer, or taken over when the instance is retried).
"""

from engine.errors import WorkflowError

MAX_ATTEMPTS = 5


def run(ctx):
    data = ctx.data
    attempt = int(data.get("attempt", 0)) + 1
    if attempt > MAX_ATTEMPTS:
        raise WorkflowError(f"the export was restarted {MAX_ATTEMPTS} times without completing",
                            hint="something keeps clearing the freeze flag or removing the staging folder; "
                                 "find it, then start a new export")
    data["attempt"] = attempt
    data["restart"] = False
    if "paused_before" not in data:  # the operator's state, as found by the first attempt
        flag = ctx.api.store_stats(data["source"])  # a stale freeze (its holder gone) is no one's pause
        data["paused_before"] = bool(flag["paused"] and not flag.get("stale"))
    if data["paused_before"]:
        ctx.log("the store was paused before the export; it stays paused afterwards")
        data["frozen"] = True
        return
    data["frozen"] = ctx.api.pause_ingestion(data["source"], holder=ctx.api.freeze_holder(ctx.instance_id))["paused"]
    ctx.on_cancel("resume_ingestion", uri=data["source"])  # a cancel must not leave the store frozen
