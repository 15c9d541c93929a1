"""``Instances``: every instance; one opens with its BPMN diagram, timeline, variables, Retry and Cancel.

The diagram is drawn by bpmn-js with completed, active and failed activities marked (see
:mod:`engine.ui.diagram`). Variables are the instance's data as stored (passwords were removed before it
was stored) and go through ``redact`` once more. Retry hands the instance to a background runner;
Cancel runs its clean-up actions first. Both act as the logged-in user, with the CLI's rights.
"""

from __future__ import annotations

import json

import streamlit as st

from engine.api import processes, redact
from engine.errors import ProcosError

from .. import diagram, follow
from ..look import between, seconds_text, state_badge, table

TIMELINE_SKIP = {"time", "kind", "scripts", "variables", "declared", "outcomes", "task_id"}


def _rows(instances: list[dict]) -> list[dict]:
    rows = []
    for i in reversed(instances):
        took = between(i["started_at"], i["updated_at"]) if i["state"] not in ("running", "waiting") else None
        rows.append({"Instance": i["instance_id"], "Process": i["process"], "State": state_badge(i["state"]),
                     "Outcome": i["outcome"] or "-", "Started by": i["started_by"],
                     "Started": i["started_at"][:19].replace("T", " "), "Duration": seconds_text(took)})
    return rows


def _timeline(history: list[dict]) -> None:
    lines = []
    for h in history:
        detail = {k: v for k, v in h.items() if k not in TIMELINE_SKIP}
        who = f" by **{detail.pop('by')}**" if "by" in detail else ""
        name = detail.pop("name", None)
        task = detail.pop("task", None)
        what = f" · {name or task}" if (name or task) else ""
        rest = ", ".join(f"{k}={json.dumps(v) if not isinstance(v, str) else v}" for k, v in detail.items()
                         if not isinstance(v, dict | list))
        lines.append(f"- `{h.get('time', '')[11:23]}` **{h['kind']}**{what}{who}" + (f" — {redact(rest)}" if rest else ""))
    st.markdown("\n".join(lines))


def _actions(who, shown: dict) -> None:
    state, iid = shown["state"], shown["instance_id"]
    left, right = st.columns(2)
    if state in ("error", "interrupted") and left.button("Retry", key=f"retry_{iid}", type="primary"):
        try:
            processes.retry_instance(iid, actor=who, wait=False)
            st.session_state["instance_message"] = ("ok", f"instance {iid} is running again")
        except ProcosError as exc:
            st.session_state["instance_message"] = ("error", exc.message)
        st.rerun()
    if state in ("waiting", "error", "interrupted") and right.button("Cancel", key=f"cancel_{iid}"):
        try:
            processes.cancel_instance(iid, actor=who)
            st.session_state["instance_message"] = ("ok", f"instance {iid} was cancelled")
        except ProcosError as exc:
            st.session_state["instance_message"] = ("error", exc.message)
        st.rerun()


def _detail(who, iid: str) -> None:
    shown = follow.follow(iid)
    _actions(who, shown)
    st.subheader("Diagram")
    drawn = processes.instance_diagram(iid)
    if drawn["xml"]:
        st.markdown(":green[**■ completed**] · :orange[**■ active**] · :red[**■ failed**]")
        diagram.show(drawn, f"BPMN diagram of instance {iid}")
    else:
        st.warning(drawn["note"])
    left, right = st.columns([3, 2])
    with left:
        st.subheader("History")
        _timeline(shown["history"])
    with right:
        st.subheader("Variables")
        st.json(json.loads(redact(json.dumps(shown.get("data") or {}, default=str))), expanded=True)


def render(who) -> None:
    st.title("Instances")
    message = st.session_state.pop("instance_message", None)
    if message:
        (st.success if message[0] == "ok" else st.error)(message[1])
    instances = processes.list_instances()
    if not instances:
        st.info("No instances yet.")
        return
    rows = _rows(instances)
    st.dataframe(table(rows), hide_index=True)
    ids = [r["Instance"] for r in rows]
    wanted = st.query_params.get("instance")
    labels = {f"{r['Instance']} · {r['Process']} · {r['State']}": r["Instance"] for r in rows}
    index = ids.index(wanted) if wanted in ids else 0
    chosen = labels[st.selectbox("Open instance", list(labels), index=index)]
    if chosen != wanted:
        st.query_params["instance"] = chosen
    try:
        _detail(who, chosen)
    except ProcosError as exc:
        st.error(exc.message)
