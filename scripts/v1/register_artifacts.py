"""Register the bundle's knowledge artifacts with the target store (register_artifacts), approved content only."""


def run(ctx):
    data = ctx.data
    data["artifacts"] = int(ctx.api.register_artifacts(data["bundle"], data["target"], mode=data.get("mode", "append"),
                                                        expected_content_hash=data.get("content_hash"),
                                                        require_signature=ctx.environment != "dev",
                                                        identity=data.get("identity") or None)["artifacts"])
