"""What happened to stores and bundles, read from the instances and events (the panel's dashboards).

Read-only summaries over the workflow state, above :mod:`engine.workflow` like :mod:`engine.api.processes`:
the last drift check and DR drill of a store, the bundles some instance verified, and the DR drill reports.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from . import processes

STALE_DAYS = 7  # a check older than this is amber, whatever it found


def _age_days(stamp: str | None) -> float | None:
    if not stamp:
        return None
    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (datetime.now(UTC) - then).total_seconds() / 86400


def _colour(good: bool | None, stamp: str | None) -> str:
    if good is False:
        return "red"
    age = _age_days(stamp)
    if good is None or age is None or age > STALE_DAYS:
        return "amber"
    return "green"


def _finished(process: str) -> list[dict[str, Any]]:
    return [i for i in processes.list_instances() if i["process"] == process and i["state"] in ("completed", "error")]


def last_drift_check(uri: str) -> dict[str, Any] | None:
    """The newest finished ``drift_check`` of store ``uri``: ``{"instance_id", "time", "drift", "drifted",
    "missing", "unexpected", "checked", "state", "status"}`` (status green | amber | red), or None."""
    for inst in reversed(_finished("drift_check")):
        data = processes.show_instance(inst["instance_id"])["data"]
        if data.get("uri") != uri:
            continue
        drift = data.get("drift") if inst["state"] == "completed" else None
        good = None if inst["state"] == "error" else (not drift)
        return {"instance_id": inst["instance_id"], "time": inst["updated_at"], "drift": drift,
                "drifted": data.get("drifted"), "missing": data.get("missing"), "unexpected": data.get("unexpected"),
                "checked": data.get("checked"), "state": inst["state"], "status": _colour(good, inst["updated_at"])}
    return None


def drill_reports() -> list[dict[str, Any]]:
    """Every DR drill that reported (``dr_drill_completed``), oldest first: ``[{"time", "instance_id", "report",
    "passed", "restore_seconds", "record_count", "mean_overlap", "source", "status"}]``."""
    from .panel import read_drill_report

    out = []
    for e in processes.list_events("dr_drill_completed"):
        row = {"time": e.get("time"), "instance_id": e.get("instance_id"), "report": e.get("report"),
               "passed": e.get("passed"), "restore_seconds": e.get("restore_seconds"),
               "record_count": e.get("record_count"), "mean_overlap": None, "source": None}
        try:
            doc = read_drill_report(e["report"])
        except Exception:  # noqa: BLE001 - a report moved away still shows its event's figures
            doc = {}
        validation = doc.get("validation") or {}
        row.update(mean_overlap=validation.get("mean_overlap"), source=doc.get("source"))
        row["status"] = _colour(bool(row["passed"]) if row["passed"] is not None else None, row["time"])
        out.append(row)
    return out


def last_drill(uri: str) -> dict[str, Any] | None:
    """The newest DR drill report of store ``uri`` (see :func:`drill_reports`), or None."""
    from engine.secrets import redact_text

    mine = [d for d in drill_reports() if d.get("source") in (uri, redact_text(uri))]
    return mine[-1] if mine else None


def verified_contents() -> dict[str, dict[str, Any]]:
    """``{content_hash: {"time", "instance_id", "process", "ok", "signature"}}``: the newest verification of
    each bundle content by an import or an import check (``ok`` False when that verification failed)."""
    found: dict[str, dict[str, Any]] = {}
    for inst in processes.list_instances():
        if inst["process"] not in ("import_snapshot", "check_import"):
            continue
        data = processes.show_instance(inst["instance_id"])["data"]
        verification = data.get("verification") or {}
        content = verification.get("content_hash") or (data.get("content_hash") if data.get("verified") else None)
        if not content:
            continue
        ok = verification.get("ok") if verification else True
        signature = (verification.get("signature") or data.get("signature") or {}).get("status")
        found[content] = {"time": inst["updated_at"], "instance_id": inst["instance_id"], "process": inst["process"],
                          "ok": bool(ok), "signature": signature}
    return found
