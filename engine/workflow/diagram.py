"""What an instance's diagram shows: the BPMN XML it started from and the state of each activity.

The XML is the process file recorded in the instance's ``started`` entry, refused (``xml`` None, with
a ``note``) when the file changed since (its content hash is no longer the instance's version), so a
diagram never shows a model the instance did not run. Activity states come from the history: a
``step`` entry (or a person's decision, ``user_action``) marks an element completed, a script that started and has not finished (or a waiting
user task) marks it active, and the task of the last ``error`` marks it failed while the instance is in
error.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any


def activity_states(history: list[dict], state: str, waiting: list[str]) -> dict[str, list[str]]:
    """``{"completed", "active", "failed"}``: lists of BPMN element ids (an id appears in one list)."""
    completed: list[str] = []
    running: dict[str, None] = {}
    failed: str | None = None
    for h in history:
        task = h.get("task")
        if task and (h["kind"] == "step" and h.get("state") == "COMPLETED" or h["kind"] == "user_action"):
            if task not in completed:
                completed.append(task)
            running.pop(task, None)
        elif h["kind"] == "script_started" and task:
            running[task] = None
        elif h["kind"] == "script" and task:
            running.pop(task, None)
        elif h["kind"] == "error" and task:
            failed = task
        elif h["kind"] in ("retry", "reset"):
            failed = None
    failed_ids = [failed] if state == "error" and failed else []
    active = [t for t in [*waiting, *(running if state == "running" else [])] if t not in failed_ids]
    active = list(dict.fromkeys(active))
    done = [t for t in completed if t not in active and t not in failed_ids]
    return {"completed": done, "active": active, "failed": failed_ids}


def instance_diagram(shown: dict, history: list[dict]) -> dict[str, Any]:
    """``{"xml", "file", "version", "note", "completed", "active", "failed"}`` of a shown instance."""
    started = next((h for h in history if h.get("kind") == "started"), {})
    waiting = [t.get("bpmn_id") for t in shown.get("tasks") or [] if t.get("bpmn_id")]
    out: dict[str, Any] = {"file": started.get("file"), "version": shown.get("version"), "xml": None, "note": None,
                           **activity_states(history, shown["state"], waiting)}
    path = Path(str(started.get("file") or ""))
    try:
        data = path.read_bytes()
    except OSError as exc:
        out["note"] = f"the process file {path} cannot be read ({exc.strerror or exc})"
        return out
    if hashlib.sha256(data).hexdigest()[:16] != shown.get("version"):
        out["note"] = (f"the process file {path} changed since this instance started (version "
                       f"{shown.get('version')}); the diagram is not shown")
        return out
    out["xml"] = data.decode("utf-8")
    return out
