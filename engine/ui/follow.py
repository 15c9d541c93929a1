"""An instance's state as a person follows it: step, progress bar, elapsed time, outcome; live while it runs.

The page never runs the operation: it reads :func:`engine.api.processes.show_instance` and, while the
instance is ``running``, a fragment reads it again every second. When it stops running (completed,
waiting for approval, failed) the whole page is drawn once more and the polling ends. The instance id
lives in the page's URL (``?instance=ID``), so a refresh or a second tab shows the same run.
"""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from engine.api import processes, redact

from .look import age, between, seconds_text, short_hash, state_badge

POLL_SECONDS = 1.0
RESULT_KEYS = ("bundle", "snapshot_id", "content_hash", "record_count", "imported", "skipped", "artifacts",
               "approver", "comment")


def current_step(history: list[dict]) -> dict | None:
    """The last script that started and has not finished (None when none is running)."""
    running: dict[str, dict] = {}
    for h in history:
        if h["kind"] == "script_started":
            running[h.get("task", "")] = h
        elif h["kind"] == "script":
            running.pop(h.get("task", ""), None)
    return list(running.values())[-1] if running else None


def elapsed(shown: dict) -> float | None:
    if shown["state"] == "running":
        return between(shown.get("started_at"), datetime.now(UTC).isoformat())
    return between(shown.get("started_at"), shown.get("updated_at"))


def render(shown: dict) -> None:
    """The instance at a glance (no secret: data is stored redacted, and shown through redact again)."""
    state = shown["state"]
    st.markdown(f"**Instance `{shown['instance_id']}`** · {shown['process']} · {state_badge(state)}"
                + (f" · outcome **{shown['outcome']}**" if shown.get("outcome") else ""))
    cols = st.columns(3)
    cols[0].metric("Elapsed", seconds_text(elapsed(shown)))
    cols[1].metric("Started by", shown.get("started_by") or "-")
    cols[2].metric("Started", f"{age(shown.get('started_at'))} ago")
    if state == "running":
        step = current_step(shown["history"])
        st.markdown(f"Current step: **{step.get('name') if step else 'between steps'}**")
        p = shown.get("progress") or {}
        if p.get("done") is not None:
            total = p.get("total")
            unit = p.get("unit", "rows")
            text = f"{p['done']:,} / {total:,} {unit} written" if total else f"{p['done']:,} {unit} written"
            if p.get("rate"):
                text += f" · {p['rate']:,.0f} {unit}/s"
            st.progress(min(1.0, p["done"] / total) if total else 0.0, text=text)
        else:
            st.progress(0.0, text="starting…")
    for task in shown.get("tasks") or []:
        st.info(f"Waiting for approval: **{task['name']}** (lane {task.get('lane') or '-'}). An approver decides "
                "on the Approvals page.")
    data = shown.get("data") or {}
    result = {k: data[k] for k in RESULT_KEYS if data.get(k) not in (None, "")}
    if result and state in ("completed", "waiting"):
        if "content_hash" in result:
            result["content_hash"] = short_hash(result["content_hash"], 16)
        if isinstance(result.get("artifacts"), dict):
            result["artifacts"] = f"{result['artifacts'].get('files', '?')} files"
        st.table({"Result": list(result), "Value": [redact(str(v)) for v in result.values()]})
    if state == "completed" and shown.get("outcome") == "succeeded":
        st.success(f"{shown['process']} completed.")
    elif state == "completed":
        st.warning(f"{shown['process']} ended: {shown.get('outcome')}.")
    elif state in ("error", "interrupted"):
        st.error(redact(shown.get("error") or f"the instance is {state}"))
        st.caption("Open it on the Instances page to retry or cancel it.")


@st.fragment(run_every=POLL_SECONDS)
def _live(instance_id: str) -> None:
    shown = processes.show_instance(instance_id)
    render(shown)
    if shown["state"] != "running":
        st.rerun()


def follow(instance_id: str) -> dict:
    """Show the instance; keep it current while it runs. Returns what was read first."""
    shown = processes.show_instance(instance_id)
    if shown["state"] == "running":
        _live(instance_id)
    else:
        render(shown)
    return shown
