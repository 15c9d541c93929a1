"""The dev path of the approval gateway: approve automatically and say so in the audit data."""


def run(ctx):
    ctx.data["approved"] = True
    ctx.data["approver"] = "auto (dev)"
    ctx.log(f"approved automatically: environment is {ctx.environment}")
