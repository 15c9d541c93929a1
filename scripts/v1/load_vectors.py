"""Load the bundle's records into the target store (load_vectors verifies the bundle again first)."""


def run(ctx):
    data = ctx.data
    result = ctx.api.load_vectors(data["bundle"], data["target"], mode=data.get("mode", "append"),
                                  on_conflict=data.get("on_conflict", "version"))
    data["imported"] = int(result["imported"])
    data["skipped"] = int(result["skipped"])
    data["snapshot_id"] = result["snapshot_id"]
    data["content_hash"] = result["content_hash"]
