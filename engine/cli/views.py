"""What ``instance show`` and ``task show`` print for a person: a summary, never raw JSON lines."""

from __future__ import annotations

import json
import textwrap
from typing import Any

from .output import paint
from .tables import MAX_LINE, age, clip, duration, parse_time, size, table

RESULT_KEYS = ("bundle", "snapshot_id", "content_hash", "record_count", "imported", "skipped", "deleted",
               "artifacts", "passed", "drift", "checked", "report", "target", "restore_seconds")
FINISHED = ("completed", "error", "cancelled", "interrupted")


def _wrap(label: str, text: str) -> list[str]:
    lines = textwrap.wrap(" ".join(str(text).split()), MAX_LINE - 11) or [""]
    return [f"{label:<10} {lines[0]}", *(f"{'':<10} {line}" for line in lines[1:])]


def current_step(history: list[dict]) -> dict | None:
    """The last script that started and has not finished (None when none is running)."""
    open_steps: dict[str, dict] = {}
    for h in history:
        if h["kind"] == "script_started":
            open_steps[h.get("task", "")] = h
        elif h["kind"] == "script":
            open_steps.pop(h.get("task", ""), None)
    return list(open_steps.values())[-1] if open_steps else None


def _progress(p: dict | None) -> str:
    if not p or p.get("done") is None:
        return ""
    total = f" / {p['total']:,}" if p.get("total") is not None else ""
    rate = f", {p['rate']:,.0f} {p.get('unit', 'rows')}/s" if p.get("rate") else ""
    eta = f", eta {duration(p['eta_seconds'])}" if p.get("eta_seconds") is not None else ""
    return f": {p['done']:,}{total} {p.get('unit', 'rows')}{rate}{eta}"


def _result(data: dict) -> str:
    parts = []
    for key in RESULT_KEYS:
        if key in data and data[key] not in (None, ""):
            value = data[key]
            if isinstance(value, dict | list):
                value = _short(value) if not (isinstance(value, dict) and "files" in value) else f"{value['files']} files"
            elif key == "content_hash":
                value = str(value)[:16] + "…"
            parts.append(f"{key} {value}")
    return "; ".join(parts)


def _error_lines(shown: dict) -> list[str]:
    if not shown.get("error"):
        return []
    iid = shown["instance_id"]
    hint = next((h.get("hint") for h in reversed(shown["history"]) if h["kind"] == "error" and h.get("hint")), None)
    lines = _wrap("error", shown["error"])
    if hint:
        lines += _wrap("try", str(hint).replace("procos instance retry ID", f"procos instance retry {iid}"))
    lines += _wrap("then", f"procos instance retry {iid}   (or: procos instance retry {iid} --var NAME=VALUE)")
    return lines


def instance_summary(shown: dict) -> str:
    """The summary of ``procos instance show ID`` (no line longer than 120 characters)."""
    iid, state = shown["instance_id"], shown["state"]
    started, ended = parse_time(shown.get("started_at")), parse_time(shown.get("updated_at"))
    took = (ended - started).total_seconds() if started and ended and state in FINISHED else None
    lines = [f"instance   {iid}  {shown['process']} (version {shown['version']})",
             f"state      {paint(state)}" + (f"   outcome {paint(shown['outcome'])}" if shown.get("outcome") else "")
             + (f"   exit code {shown['exit_code']}" if shown.get("exit_code") else ""),
             f"started    {shown.get('started_at', '-')} by {shown.get('started_by', '-')} ({age(shown.get('started_at'))}"
             " ago)"]
    if state in FINISHED:
        lines.append(f"ended      {shown.get('updated_at', '-')}   duration {duration(took)}")
    else:
        lines.append(f"running    for {age(shown.get('started_at'))}")
    step = current_step(shown["history"]) if state == "running" else None
    if step:
        lines += _wrap("step", f"{step.get('name')} ({step.get('task')})" + _progress(shown.get("progress")))
    for task in shown.get("tasks") or []:
        lines += _wrap("waiting", f"task {task['task_id']}: {task['name']} (lane {task.get('lane') or '-'})")
        lines.append(f"{'details':<10} procos task show {task['task_id']}")
        lines.append(f"{'decide':<10} procos task complete {task['task_id']} --approve|--reject")
    result = _result(shown.get("data") or {})
    if result and state in ("completed", "waiting", "error"):
        lines += _wrap("result" if state == "completed" else "so far", result)
    lines += _error_lines(shown)
    if state == "interrupted":
        lines += _wrap("resume", f"procos instance retry {iid}  (or cancel: procos instance cancel {iid})")
    return "\n".join(clip(line) for line in lines)


def history_table(history: list[dict]) -> str:
    return table(history, [("TIME", lambda h: h.get("time", "")[11:23]), ("KIND", lambda h: h.get("kind")),
                           ("BY", lambda h: h.get("by") or ""), ("TASK", lambda h: h.get("task") or ""),
                           ("DETAIL", _detail)], widest=60)


def _detail(h: dict) -> str:
    skip = {"time", "kind", "by", "task", "task_id", "name", "scripts", "variables", "outcomes", "declared"}
    rest = {k: v for k, v in h.items() if k not in skip}
    for key in ("message", "why", "error", "decision", "state", "event", "outcome", "script"):
        if key in rest:
            first = _short(rest.pop(key))
            others = " ".join(f"{k}={_short(v)}" for k, v in rest.items())
            return f"{first} {others}".strip()
    return " ".join(f"{k}={_short(v)}" for k, v in rest.items())


def _short(value: Any) -> str:
    """A scalar as text; a mapping or list as its size (the full value is in --json)."""
    if isinstance(value, dict):
        return f"<{len(value)} fields>"
    if isinstance(value, list):
        return f"<{len(value)} items>"
    return value if isinstance(value, str) else json.dumps(value)


def task_summary(task: dict) -> str:
    """``procos task show ID``: the task, what is to be decided, and how."""
    s = task.get("subject") or {}
    lines = [f"task       {task['task_id']}", f"name       {task['name']} (lane {task.get('lane') or '-'})",
             f"instance   {task['instance_id']}  {task['process']}, started by {task.get('started_by')}",
             f"waiting    {age(task.get('waiting_since'))}"]
    for key in ("source", "target", "bundle", "out_dir", "mode"):
        if key in s:
            lines += _wrap(key, s[key])
    for key in ("snapshot_id", "content_hash", "record_count"):
        if key in s:
            lines.append(f"{key:<10} {s[key]}")
    if "bytes" in s:
        lines.append(f"{'size':<10} {size(s['bytes'])}")
    if "signature" in s:
        sig = s["signature"] or {}
        lines.append(f"{'signature':<10} {sig.get('status')} {sig.get('fingerprint') or ''}".rstrip())
    if task.get("separation_of_duties"):
        lines.append(f"{'rule':<10} four eyes: {task.get('started_by')} started it and may not decide it")
    lines.append(f"{'decide':<10} procos task complete {task['task_id']} --approve|--reject --comment TEXT")
    return "\n".join(clip(line) for line in lines)


def what(task: dict) -> str:
    """One cell: what a task asks to approve."""
    s = task.get("subject") or {}
    thing = s.get("bundle") or s.get("source") or ""
    into = f" -> {s['target']}" if s.get("target") else ""
    ident = f" (id {str(s['snapshot_id'])[:8]})" if s.get("snapshot_id") else ""
    return f"{thing}{into}{ident}"
