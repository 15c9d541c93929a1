"""Open a staging folder under out_dir for this export (start_export).

If the freeze flag is clear here, a failure path ran since the flag was set (this is a retry): skip the
frozen phase and let the "Restart needed?" gateway start it again from the freeze.
"""


def run(ctx):
    data = ctx.data
    if data.get("restart") or not ctx.api.is_paused(data["source"]):
        data["restart"] = True
        data.pop("staging", None)
        return
    data["staging"] = str(ctx.api.start_export(data["out_dir"]))
    ctx.on_cancel("abort_export", staging=data["staging"])  # a cancel removes the unfinished bundle
