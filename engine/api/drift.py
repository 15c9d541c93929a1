"""Drift detection of the front door: compare a store with a bundle's vector hashes, and say so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .stores import opened

EVENT_IDS_LISTED = 20


def drift_check(uri: str | None, snapshot: str | Path, *, sample: int | None = None, seed: int = 0,
                instance_id: str | None = None, emit: bool = True) -> dict[str, Any]:
    """Compare the store ``uri`` with bundle ``snapshot``: every record (``sample`` None) or ``sample`` random ones.

    Returns ``{"drift", "drifted", "missing", "unexpected", "checked", "counts", "mode",
    "unexpected_checked", ...}`` (see :class:`engine.drift.DriftReport`). When anything drifted
    and ``emit`` is set, a ``vector_drift_detected`` event goes to ``$PROCOS_HOME/events.jsonl``
    and ``$PROCOS_WEBHOOK_URL``; ``"event_problems"`` lists deliveries that failed. BPMN scripts
    pass ``emit=False`` and emit through their context instead. Raises BundleInvalid when the
    bundle does not verify (it is then no baseline).
    """
    from engine.drift import check_drift

    with opened(uri) as repo:
        result = check_drift(repo, snapshot, sample=sample, seed=seed).to_json()
    result["event"] = None
    result["event_problems"] = []
    if result["drift"] and emit:
        from engine.events import emit_event

        fields = {"uri": result["uri"], "snapshot": result["snapshot"], "snapshot_id": result["snapshot_id"],
                  "mode": result["mode"], "checked": result["checked"], "counts": result["counts"],
                  "settings_changed": result["settings_changed"],
                  **{k: result[k][:EVENT_IDS_LISTED] for k in ("drifted", "missing", "unexpected")}}
        emitted = emit_event("vector_drift_detected", instance_id, fields)
        result["event"] = "vector_drift_detected"
        result["event_problems"] = emitted["problems"]
    return result
