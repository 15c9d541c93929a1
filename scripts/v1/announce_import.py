"""Emit import_ready: the target holds the bundle's records and artifacts and can serve queries."""


def run(ctx):
    data = ctx.data
    ctx.emit("import_ready", bundle=data["bundle"], target=data["target"], snapshot_id=data.get("snapshot_id"),
             imported=data.get("imported"), skipped=data.get("skipped"), artifacts=data.get("artifacts"))
