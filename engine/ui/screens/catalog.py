"""``Catalog``: the bundles of a location as a lineage graph (full bundles and their deltas), sizes, ages,
checksum status; one selected shows its manifest.

Checksum status: red when the folder's catalog reports the bundle missing, unreadable or not what it
lists; green when an import or an import check verified that content; amber otherwise (never verified
since written). Nothing here re-hashes a bundle: that is a long operation, run as an import check.
"""

from __future__ import annotations

import json

import streamlit as st

from engine import api
from engine.api import activity, panel
from engine.errors import ProcosError

from ..look import age, badge, short_hash, size, table

COLOURS = {"green": "#dafbe1", "amber": "#fff8c5", "red": "#ffebe9"}


def statuses(location: str, bundles: list[dict]) -> dict[str, tuple[str, str]]:
    """``{snapshot_id: (colour, text)}`` for the bundles of ``location``."""
    problems: dict[str, str] = {}
    if not location.startswith("s3://"):
        try:
            checked = api.snapshot_catalog(location, quick=True)
            for p in checked["problems"]:
                if p.get("bundle") and p.get("code") != "uncatalogued":
                    problems.setdefault(p["bundle"], p["problem"])
        except ProcosError:
            pass
    verified = activity.verified_contents()
    out = {}
    for b in bundles:
        sid = b.get("snapshot_id") or b["name"]
        seen = verified.get(b.get("content_hash") or "")
        if sid in problems:
            out[sid] = ("red", problems[sid])
        elif seen is not None and not seen["ok"]:
            out[sid] = ("red", f"failed verification ({seen['instance_id']})")
        elif seen is not None:
            out[sid] = ("green", f"verified {age(seen['time'])} ago")
        else:
            out[sid] = ("amber", "not verified since written")
    return out


def lineage_dot(bundles: list[dict], status: dict[str, tuple[str, str]]) -> str:
    """Graphviz DOT: one node per bundle (full: box, delta: rounded), an edge from each parent to its delta."""
    lines = ['digraph lineage {', 'rankdir=LR; node [fontname="sans-serif" fontsize=10 style=filled];']
    ids = {b.get("snapshot_id") for b in bundles}
    for b in sorted(bundles, key=lambda x: x.get("created_utc") or ""):
        sid = b.get("snapshot_id") or b["name"]
        colour = COLOURS[status.get(sid, ("amber", ""))[0]]
        shape = "box" if b.get("kind") != "delta" else "box, style=\"rounded,filled\""
        label = f"{b['name']}\\n{b.get('kind') or '?'} · {size(b.get('bytes'))} · {age(b.get('created_utc'))} old"
        lines.append(f'"{sid}" [label="{label}" shape={shape} fillcolor="{colour}"];')
        parent = (b.get("parent") or {}).get("snapshot_id")
        if parent:
            if parent not in ids:
                lines.append(f'"{parent}" [label="missing parent\\n{short_hash(parent, 8)}" fillcolor="{COLOURS["red"]}"];')
            lines.append(f'"{parent}" -> "{sid}";')
    lines.append("}")
    return "\n".join(lines)


def render(who) -> None:
    st.title("Catalog")
    try:
        cfg = panel.panel_config()
    except ProcosError as exc:
        st.error(exc.message)
        return
    if not cfg["locations"]:
        st.info(f"No locations are configured in {cfg['path']}.")
        return
    location = st.selectbox("Location", cfg["locations"])
    try:
        bundles = api.list_snapshots(location)
    except ProcosError as exc:
        st.error(exc.message)
        return
    if not bundles:
        st.info("No bundles there yet.")
        return
    if not location.startswith("s3://"):
        bundles = [{**b, **_described(b)} for b in bundles]
    status = statuses(location, bundles)
    st.graphviz_chart(lineage_dot(bundles, status))
    st.dataframe(table([{"Bundle": b["name"], "Kind": b.get("kind"), "Records": b.get("record_count"),
                   "Size": size(b.get("bytes")), "Age": age(b.get("created_utc")),
                   "Checksums": badge(*status[b.get("snapshot_id") or b["name"]]),
                   "Signed": "yes" if b.get("signed") else "no", "Encrypted": "yes" if b.get("encrypted") else "no"}
                        for b in bundles]), hide_index=True)
    chosen = st.selectbox("Show the manifest of", [b["name"] for b in bundles])
    bundle = next(b for b in bundles if b["name"] == chosen)
    if location.startswith("s3://"):
        st.info("Pull the bundle (procos snapshot pull) or import it to see its whole manifest; its listing: ")
        st.json(bundle)
        return
    try:
        st.json(json.loads(api.redact(json.dumps(panel.snapshot_manifest(bundle["location"])))))
    except ProcosError as exc:
        st.error(exc.message)


def _described(entry: dict) -> dict:
    try:
        doc = api.describe_snapshot(entry["location"])
    except ProcosError:
        return {}
    return {"content_hash": doc.get("content_hash")} if doc.get("content_hash") else {}
