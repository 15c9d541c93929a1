"""Verify every byte and count of the bundle (verify_snapshot); fail the task listing the first problems.

Records the verified ``content_hash`` (and id, record count): the approval is for exactly that content.
Outside dev the bundle must carry a good signature by a trusted key before anyone is asked to approve it.
"""

from engine.errors import BundleInvalid, SignatureRequired

SHOWN = 5


def _describe(error):
    if isinstance(error, dict):
        return f"{error.get('path', '?')}: {error.get('problem') or error.get('message') or error}"
    return str(error)


def run(ctx):
    bundle = ctx.data["bundle"]
    result = ctx.api.verify_snapshot(bundle, identity=ctx.data.get("identity") or None)
    errors = list(result.get("errors") or [])
    if not result.get("ok") or errors:
        shown = "; ".join(_describe(e) for e in errors[:SHOWN]) or "not ok"
        more = f" (and {len(errors) - SHOWN} more)" if len(errors) > SHOWN else ""
        raise BundleInvalid(f"bundle {bundle} failed verification with {len(errors)} problem(s): {shown}{more}",
                            [e if isinstance(e, dict) else {"problem": str(e)} for e in errors],
                            hint=f"procos snapshot verify {bundle} lists every problem; export the bundle again")
    doc = result.get("manifest") or {}
    signature = result.get("signature") or {"status": "missing", "fingerprint": None}
    if ctx.environment != "dev" and signature.get("status") != "good":
        raise SignatureRequired(
            f"bundle {bundle} has no good signature by a trusted key (signature {signature.get('status')}); "
            f"in {ctx.environment} every import needs one, so nobody is asked to approve it",
            [{"path": "checksums.sha256.asc", "problem": f"signature {signature.get('status')}"}],
            hint="sign it (procos snapshot sign BUNDLE --key KEYID) and trust the key (PROCOS_TRUSTED_KEYS)")
    ctx.data["signature"] = signature
    ctx.data["verified"] = True
    ctx.data["snapshot_id"] = doc.get("snapshot_id")
    # what the approver approves: the load steps refuse a bundle whose content_hash is not this one
    ctx.data["content_hash"] = doc.get("content_hash")
    ctx.data["record_count"] = doc.get("record_count")
    ctx.data["bytes"] = ctx.api.bundle_size(bundle)
