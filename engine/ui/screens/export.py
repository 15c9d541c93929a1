"""``Export``: pick a store and a snapshots folder, press ``Export snapshot``, follow the run.

The button starts the ``export_snapshot`` process as the logged-in user (``wait=False``: a background
runner runs it) and puts the instance id in the URL; the page then follows that instance until it
completes, waits for an approver, or fails. Only folder locations are offered: bundles reach S3 with
``procos snapshot push``.
"""

from __future__ import annotations

import streamlit as st

from engine.api import panel, processes, redact
from engine.errors import ProcosError

from .. import follow


def _recent(who) -> list[dict]:
    mine = [i for i in processes.list_instances() if i["process"] == "export_snapshot"]
    return list(reversed(mine))[:10]


def render(who) -> None:
    st.title("Export")
    try:
        cfg = panel.panel_config()
    except ProcosError as exc:
        st.error(exc.message)
        return
    folders = [loc for loc in cfg["locations"] if not loc.startswith("s3://")]
    if not cfg["stores"] or not folders:
        st.info(f"Configure at least one store and one snapshots folder in {cfg['path']}.")
        return
    names = [s["name"] for s in cfg["stores"]]
    with st.form("export"):
        store = st.selectbox("Store", names, index=0)
        location = st.selectbox("Output location", folders, index=0)
        pack = st.checkbox("Also write the .tar.zst archive", value=False)
        go = st.form_submit_button("Export snapshot", type="primary")
    if go:
        uri = next(s["uri"] for s in cfg["stores"] if s["name"] == store)
        try:
            started = processes.start_process("export_snapshot", {"source": uri, "out_dir": location, "pack": pack},
                                              actor=who, wait=False)
        except ProcosError as exc:
            st.error(redact(exc.message))
            if exc.hint:
                st.caption(f"Try: {exc.hint}")
        else:
            st.query_params["instance"] = started["instance_id"]
    iid = st.query_params.get("instance")
    if iid:
        try:
            follow.follow(iid)
        except ProcosError as exc:
            st.error(exc.message)
    recent = _recent(who)
    if recent:
        st.subheader("Recent exports")
        st.dataframe([{"Instance": i["instance_id"], "State": i["state"], "Outcome": i["outcome"] or "-",
                       "Started by": i["started_by"], "Started": i["started_at"][:19].replace("T", " ")}
                      for i in recent], hide_index=True)
