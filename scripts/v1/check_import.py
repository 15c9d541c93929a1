"""Check a bundle before anyone imports it: verify every byte and its signature, then plan the import.

Leaves ``verification`` (``{"ok", "errors", "error_count", "signature", "signature_required", "snapshot_id",
"content_hash", "record_count", "kind", "created_utc"}``), ``plan`` (the dry run against the target:
``would_insert``/``would_replace``/...; None when the bundle did not pass), ``passed`` and, when it did
not pass, ``refusal`` (why, in one line). Writes nothing and creates no store. Outside dev a bundle
without a good signature by a trusted key does not pass: its import would be refused.
"""

import json

from engine.errors import BundleError

SHOWN = 20


def _problem(error):
    if isinstance(error, dict):
        return {"path": str(error.get("path") or ""), "problem": str(error.get("problem") or error.get("message") or error)}
    return {"path": "", "problem": str(error)}


def run(ctx):
    data = ctx.data
    bundle, identity = data["bundle"], data.get("identity") or None
    required = ctx.environment != "dev"
    try:
        result = ctx.api.verify_snapshot(bundle, identity=identity)
    except BundleError as exc:  # unreadable archive, wrong key, unsafe entries: a finding like any other
        found = [_problem(f) for f in getattr(exc, "findings", [])] or [{"path": "", "problem": exc.message}]
        result = {"ok": False, "errors": found, "manifest": None, "signature": {"status": "missing"}}
    errors = [_problem(e) for e in result.get("errors") or []]
    doc = result.get("manifest") or {}
    signature = result.get("signature") or {"status": "missing", "fingerprint": None}
    data["verification"] = {
        "ok": bool(result.get("ok")) and not errors, "errors": errors[:SHOWN], "error_count": len(errors),
        "signature": {"status": signature.get("status"), "fingerprint": signature.get("fingerprint")},
        "signature_required": required, "snapshot_id": doc.get("snapshot_id"),
        "content_hash": doc.get("content_hash"), "record_count": doc.get("record_count"),
        "kind": doc.get("kind", "full") if doc else None, "created_utc": doc.get("created_utc")}
    data["plan"] = None
    if errors or not result.get("ok"):
        first = errors[0] if errors else {"path": "", "problem": "not ok"}
        where = f"{first['path']}: " if first["path"] else ""
        data["refusal"] = f"the bundle failed verification with {len(errors)} problem(s), first: {where}{first['problem']}"
    elif required and signature.get("status") != "good":
        data["refusal"] = (f"the bundle has no good signature by a trusted key (signature {signature.get('status')}); "
                           f"in {ctx.environment} its import would be refused")
    else:
        plan = ctx.api.import_snapshot(bundle, data["target"], mode=data.get("mode", "append"),
                                       on_conflict=data.get("on_conflict", "version"), dry_run=True,
                                       require_signature=required, identity=identity)
        data["plan"] = json.loads(json.dumps(plan, default=str))
    data["passed"] = data["plan"] is not None
