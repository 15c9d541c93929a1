"""Open a staging folder under out_dir for this export (start_export).

If this instance no longer holds its freeze here (a failure path cleared it, or it went stale and a
writer cleared it, since the flag was set: this is a retry), skip the frozen phase and let the "Restart
needed?" gateway start it again from the freeze. Holding it, this runner takes over renewing its lease.
"""


def run(ctx):
    data = ctx.data
    if data.get("paused_before"):
        frozen = ctx.api.is_paused(data["source"])
    else:
        frozen = ctx.api.renew_pause(data["source"], ctx.api.freeze_holder(ctx.instance_id))["held"]
    if data.get("restart") or not frozen:
        data["restart"] = True
        data.pop("staging", None)
        return
    data["staging"] = str(ctx.api.start_export(data["out_dir"]))
    ctx.on_cancel("abort_export", staging=data["staging"])  # a cancel removes the unfinished bundle
