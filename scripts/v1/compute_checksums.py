"""Write checksums and the manifest, then publish the bundle (finish_export); sets ``bundle``.

Signs it (``checksums.sha256.asc``) when a signing key is configured (PROCOS_SIGNING_KEY).

Skips (restart) when the staging folder was removed by the failure path, like dump_embeddings.
"""

import os


def run(ctx):
    data = ctx.data
    if data.get("restart") or not os.path.isdir(data.get("staging") or ""):
        data["restart"] = True
        return
    result = ctx.api.finish_export(data["staging"], source_env=data.get("environment"),
                                   pack=bool(data.get("pack", False)))
    data.pop("staging")
    ctx.cancel_done("abort_export")  # the bundle is published: nothing to remove any more
    data["bundle"] = str(result["path"])
    data["snapshot_id"] = result["snapshot_id"]
    data["content_hash"] = result["content_hash"]
    data["record_count"] = int(result["record_count"])
    key = ctx.api.signing_key()
    if key:  # PROCOS_SIGNING_KEY (or signing_key: in config.yaml) is set: the bundle leaves signed
        signed = ctx.api.sign_snapshot(data["bundle"], key)
        data["signature"] = {"status": "signed", "fingerprint": signed["fingerprint"]}
