"""History/audit entries: one JSON object per step, script, user action, refusal, error or event.

Kinds: ``started``, ``step`` (a task completed), ``script`` (path or URL, sha256, outcome, error line),
``user_action`` (who, when, decision, comment), ``refused`` (who or the refused action, why), ``error``, ``event``, ``retry``,
``cancelled``, ``log``, ``warning``. Every entry has ``time`` and ``kind``.
"""

from __future__ import annotations

from typing import Any

from .store import now_iso


def entry(kind: str, **fields: Any) -> dict:
    return {"time": now_iso(), "kind": kind, **{k: v for k, v in fields.items() if v is not None}}


def task_fields(task: Any) -> dict:
    spec = task.task_spec
    return {"task": spec.bpmn_id, "name": spec.bpmn_name or spec.bpmn_id, "task_id": str(task.id)}
