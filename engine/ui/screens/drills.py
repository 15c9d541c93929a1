"""``Drills``: every DR drill report as a table and as charts over time; each report openable."""

from __future__ import annotations

import streamlit as st

from engine.api import activity, panel
from engine.errors import ProcosError

from ..look import badge, table


def render(who) -> None:
    st.title("Drills")
    reports = activity.drill_reports()
    if not reports:
        st.info("No DR drill has reported yet (start simulate_restore: procos process start simulate_restore ...).")
        return
    rows = [{"Time": r["time"][:19].replace("T", " "), "Result": badge(r["status"], "passed" if r["passed"] else "failed"),
             "Restore seconds": r["restore_seconds"], "Mean top-k overlap": r["mean_overlap"],
             "Records": r["record_count"], "Instance": r["instance_id"], "Report": r["report"]} for r in reversed(reports)]
    st.dataframe(table(rows), hide_index=True)
    import pandas as pd

    frame = pd.DataFrame([{"time": pd.Timestamp(r["time"]), "restore seconds": r["restore_seconds"],
                           "mean top-k overlap": r["mean_overlap"], "records": r["record_count"]} for r in reports])
    frame = frame.set_index("time")
    cols = st.columns(3)
    for col, name in zip(cols, ("restore seconds", "mean top-k overlap", "records"), strict=True):
        col.caption(name)
        col.line_chart(frame[[name]])
    chosen = st.selectbox("Open report", [r["report"] for r in reversed(reports)])
    try:
        doc = panel.read_drill_report(chosen)
    except ProcosError as exc:
        st.error(exc.message)
        return
    if doc.get("markdown"):
        st.markdown(doc["markdown"])
    with st.expander("Report data"):
        st.json({k: v for k, v in doc.items() if k != "markdown"})
