"""``Validation``: the validation reports under ``PROCOS_HOME/reports/``, rendered as documents."""

from __future__ import annotations

import streamlit as st

from engine.api import panel
from engine.errors import ProcosError

from ..look import badge


def render(who) -> None:
    st.title("Validation")
    reports = panel.list_validation_reports()
    if not reports:
        st.info("No validation report yet (procos validate SOURCE TARGET writes one).")
        return
    def label(r: dict) -> str:
        verdict = {True: ("green", "PASS"), False: ("red", "FAIL")}.get(r["passed"], ("amber", "?"))
        return f"{r['name']} · {badge(*verdict)}"

    labels = {label(r): r["name"] for r in reports}
    chosen = labels[st.selectbox("Report", list(labels))]
    try:
        text = panel.read_validation_report(chosen)
    except ProcosError as exc:
        st.error(exc.message)
        return
    with st.container(border=True):
        st.markdown(text)
