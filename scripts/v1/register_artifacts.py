"""Register the bundle's knowledge artifacts with the target store (register_artifacts), approved content only."""

import os


def run(ctx):
    data = ctx.data
    if data.get("bundle_source") and not os.path.exists(data["bundle"]):  # fetched by a runner elsewhere
        data["bundle"] = ctx.api.fetch_bundle(data["bundle_source"], data["fetched_folder"])["path"]
    data["artifacts"] = int(ctx.api.register_artifacts(data["bundle"], data["target"], mode=data.get("mode", "append"),
                                                        expected_content_hash=data.get("content_hash"),
                                                        require_signature=ctx.environment != "dev",
                                                        identity=data.get("identity") or None)["artifacts"])
