"""Emit snapshot_exported with the bundle's path, id, content hash and record count."""


def run(ctx):
    data = ctx.data
    ctx.emit("snapshot_exported", bundle=data["bundle"], snapshot_id=data["snapshot_id"],
             content_hash=data["content_hash"], record_count=data["record_count"], source=data["source"],
             remote=data.get("remote"))
