"""``Approvals``: the tasks the logged-in user may complete, what each approves, ``Approve`` / ``Reject``.

The list is :func:`engine.api.processes.list_tasks` for this user, so a task the user may not complete
(no role for its lane, or their own request in prod) is never offered; the api checks again when a
decision is sent, and records it with the comment. The approved instance then runs on in a background
runner (``wait=False``); the page links to it.
"""

from __future__ import annotations

import streamlit as st

from engine.api import processes, redact
from engine.errors import ProcosError

from ..look import age, size

SUBJECT = (("source", "Source"), ("target", "Target"), ("bundle", "Bundle"), ("out_dir", "Output folder"),
           ("mode", "Mode"), ("snapshot_id", "Bundle id"), ("record_count", "Records"), ("content_hash", "content_hash"))


def _what(task: dict) -> dict:
    data = task.get("data") or {}
    s = {**(task.get("subject") or {})}
    rows = {"Process": task["process"], "Started by": task.get("started_by") or "-",
            "Waiting for": age(task.get("waiting_since"))}
    for key, label in SUBJECT:
        if s.get(key) not in (None, ""):
            rows[label] = redact(str(s[key]))
    if "bytes" in s:
        rows["Size"] = size(s["bytes"])
    if task["process"] == "import_snapshot":
        rows["Verification"] = "passed (every checksum and count)" if data.get("verified") else "not verified"
        sig = s.get("signature") or data.get("signature") or {}
        rows["Signature"] = f"{sig.get('status', '-')}" + (f" ({sig['fingerprint']})" if sig.get("fingerprint") else "")
    elif "record_count" in s:
        rows["Verification"] = "the source's current count; the bundle is written after approval"
    return rows


def _decide(who, task: dict, approve: bool, comment: str) -> None:
    try:
        done = processes.complete_task(task["task_id"], approve, comment or None, actor=who, wait=False)
    except ProcosError as exc:
        st.session_state["approval_message"] = ("error", exc.message)
        return
    verb = "Approved" if approve else "Rejected"
    st.session_state["approval_message"] = ("ok", f"{verb}: instance {done['instance_id']} runs on "
                                                  "(see Instances).", done["instance_id"])


def render(who) -> None:
    st.title("Approvals")
    message = st.session_state.pop("approval_message", None)
    if message:
        (st.success if message[0] == "ok" else st.error)(message[1])
    try:
        tasks = processes.list_tasks(actor=who)
    except ProcosError as exc:
        st.error(exc.message)
        return
    if not tasks:
        st.info("No task is waiting for you.")
        return
    for listed in tasks:
        try:
            task = {**listed, **processes.show_task(listed["task_id"])}
        except ProcosError:  # completed by someone else since the list was read
            continue
        with st.container(border=True):
            st.subheader(f"{task['name']} · {task['process']}")
            what = _what(task)
            st.table({"Field": list(what), "Value": [str(v) for v in what.values()]})
            comment = st.text_area("Comment", key=f"comment_{task['task_id']}")
            left, right = st.columns(2)
            if left.button("Approve", key=f"approve_{task['task_id']}", type="primary"):
                _decide(who, task, True, comment)
                st.rerun()
            if right.button("Reject", key=f"reject_{task['task_id']}"):
                _decide(who, task, False, comment)
                st.rerun()
