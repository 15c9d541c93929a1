"""A rejected approval ends the process cleanly: nothing was frozen or written; emit approval_rejected."""


def run(ctx):
    ctx.data["rejected"] = True
    ctx.emit("approval_rejected", process=ctx.process, approver=ctx.data.get("approver"),
             comment=ctx.data.get("comment", ""))
