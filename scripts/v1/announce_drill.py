"""DR drill step 7: emit dr_drill_completed with the report path and the headline figures."""


def run(ctx):
    data = ctx.data
    ctx.emit("dr_drill_completed", report=data["report"], passed=data.get("passed"),
             restore_seconds=data.get("restore_seconds"), record_count=data.get("record_count"))
