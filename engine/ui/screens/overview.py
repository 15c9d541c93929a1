"""``Overview``: every known store with its figures, its last snapshot, last drift check and last drill."""

from __future__ import annotations

import streamlit as st

from engine import api
from engine.api import activity, panel
from engine.errors import ProcosError

from ..look import age, badge, short_hash, size, table


def _snapshots(locations: list[str]) -> tuple[list[dict], list[str]]:
    """Every bundle of every location (described when local), newest first; and the locations' problems."""
    found, problems = [], []
    for loc in locations:
        try:
            listed = api.list_snapshots(loc)
        except ProcosError as exc:
            problems.append(f"{loc}: {exc.message}")
            continue
        for entry in listed:
            if not str(loc).startswith("s3://") and entry.get("location"):
                try:
                    entry = {**entry, **api.describe_snapshot(entry["location"])}
                except ProcosError:
                    pass
            found.append({**entry, "from": loc})
    return sorted(found, key=lambda e: e.get("created_utc") or "", reverse=True), problems


def last_snapshot_of(stats: dict, uri: str, snapshots: list[dict]) -> dict | None:
    """The newest bundle exported from this store (same store id, else the same source URI)."""
    redacted = api.redact(uri)
    for s in snapshots:
        if stats.get("store_id") and s.get("store_id") == stats.get("store_id"):
            return s
        if s.get("source_uri") and s.get("source_uri") == redacted:
            return s
    return None


def checksum_status(snap: dict, verified: dict) -> tuple[str, str]:
    seen = verified.get(snap.get("content_hash") or "")
    if seen is None:
        return "amber", "not verified since it was written"
    if not seen["ok"]:
        return "red", f"failed verification ({seen['process']} {seen['instance_id']})"
    return "green", f"verified {age(seen['time'])} ago"


def signature_status(snap: dict, verified: dict) -> tuple[str, str]:
    seen = verified.get(snap.get("content_hash") or "")
    if seen and seen.get("signature"):
        status = seen["signature"]
        return {"good": "green", "bad": "red"}.get(status, "amber"), f"signature {status}"
    if snap.get("encrypted"):
        return "amber", "encrypted (not checked)"
    return ("amber", "signed (not checked)") if snap.get("signed") else ("amber", "unsigned")


def store_row(store: dict, snapshots: list[dict], verified: dict) -> dict:
    row = {"Store": store["name"], "URI": api.redact(store["uri"])}
    try:
        stats = api.store_stats(store["uri"])
    except ProcosError as exc:
        return {**row, "Backend": badge("red", exc.message)}
    row.update({"Backend": stats.get("backend"), "Records": stats.get("count"), "Dimensions": stats.get("dimensions"),
                "Paused": "yes" if stats.get("paused") else "no", "Change sequence": stats.get("sequence")})
    snap = last_snapshot_of(stats, store["uri"], snapshots)
    if snap is None:
        row["Last snapshot"] = badge("amber", "none found in the locations")
    else:
        row.update({"Last snapshot": f"{snap.get('name')} ({short_hash(snap.get('snapshot_id'), 8)})",
                    "Snapshot age": age(snap.get("created_utc")), "Snapshot records": snap.get("record_count"),
                    "Size": size(snap.get("bytes")), "Checksums": badge(*checksum_status(snap, verified)),
                    "Signature": badge(*signature_status(snap, verified))})
    drift = activity.last_drift_check(store["uri"])
    row["Drift check"] = badge("amber", "never run") if drift is None else badge(
        drift["status"], ("drift found" if drift["drift"] else "no drift" if drift["state"] == "completed"
                          else "failed") + f", {age(drift['time'])} ago")
    drill = activity.last_drill(store["uri"])
    row["DR drill"] = badge("amber", "never run") if drill is None else badge(
        drill["status"], ("passed" if drill["passed"] else "failed") + f", {age(drill['time'])} ago")
    return row


def render(who) -> None:
    st.title("Overview")
    try:
        cfg = panel.panel_config()
    except ProcosError as exc:
        st.error(exc.message)
        return
    if not cfg["stores"]:
        st.info(f"No stores are configured. List them in {cfg['path']} (stores: [{{name: kb, uri: 'faiss:/srv/kb'}}]) "
                "or set VECTOR_ENDPOINT.")
        return
    snapshots, problems = _snapshots(cfg["locations"])
    verified = activity.verified_contents()
    rows = [store_row(s, snapshots, verified) for s in cfg["stores"]]
    st.dataframe(table(rows), hide_index=True)
    for problem in problems:
        st.warning(problem)
    st.caption("✔ green: good · ▲ amber: not known, never run, or older than a week · ✖ red: failed. Checksums turn "
               "green once an import or an import check verified that content.")
