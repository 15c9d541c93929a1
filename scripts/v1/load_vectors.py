"""Load the bundle's records into the target store (load_vectors verifies the bundle again first).

The bundle must still have the content_hash that was verified and approved; a bundle changed or replaced
since is refused before anything is written.
"""

import os


def run(ctx):
    data = ctx.data
    if data.get("bundle_source") and not os.path.exists(data["bundle"]):  # fetched by a runner elsewhere
        data["bundle"] = ctx.api.fetch_bundle(data["bundle_source"], data["fetched_folder"])["path"]
    result = ctx.api.load_vectors(data["bundle"], data["target"], mode=data.get("mode", "append"),
                                  on_conflict=data.get("on_conflict", "version"),
                                  expected_content_hash=data["content_hash"],
                                  require_signature=ctx.environment != "dev",
                                  identity=data.get("identity") or None, jobs=data.get("jobs") or None)
    data["imported"] = int(result["imported"])
    data["skipped"] = int(result["skipped"])
    data["snapshot_id"] = result["snapshot_id"]
    data["loaded_content_hash"] = result["content_hash"]  # differs from content_hash only for a migrated bundle
