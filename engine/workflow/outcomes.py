"""Outcomes: what an instance's run came to, besides its state, and the exit code that says so.

A process declares the outcome of each end event with ``procos:outcome`` (``succeeded`` when absent)::

    <bpmn:endEvent id="Event_rejected" procos:outcome="rejected" />

- ``succeeded``: it did what it was asked;
- ``rejected``: an approver said no (the approver's command still exits 0: they chose it);
- ``failed``: a check failed (validation below its threshold, a DR drill that did not pass);
- ``drift``: a drift check found drift;
- ``error``: the tool or a step broke (the instance is in ``error``; retry it once fixed);
- ``cancelled``; and empty while the instance runs, waits or was interrupted.

Exit codes, the same for a direct command and for the process commands that drive an instance
(documented in ``procos --help``): 0 succeeded (and rejected), 1 error, 2 usage, 3 bundle verification
failed, 4 a check failed (failed, drift), 75 paused or locked, 77 not authorized, 130 interrupted.
"""

from __future__ import annotations

from typing import Any

from .lint import BPMN, NS, PROCOS_NS

OUTCOMES = ("succeeded", "rejected", "failed", "drift", "error", "cancelled")
CHECK_FAILED = 4
INTERRUPTED = 130
EXIT_BY_OUTCOME = {"succeeded": 0, "rejected": 0, "failed": CHECK_FAILED, "drift": CHECK_FAILED, "cancelled": 0}



def declared_outcomes(root: Any) -> dict[str, str]:
    """``{end event id: outcome}`` from a process document's ``procos:outcome`` attributes."""
    found: dict[str, str] = {}
    for node in root.xpath("//bpmn:endEvent", namespaces=NS):
        outcome = node.get(f"{{{PROCOS_NS}}}outcome") or "succeeded"
        if outcome not in OUTCOMES or outcome in ("error", "cancelled"):
            from engine.errors import WorkflowError

            raise WorkflowError(f"endEvent {node.get('id')}: procos:outcome={outcome!r} is not one of "
                                "succeeded, rejected, failed, drift")
        found[node.get("id")] = outcome
    return found


def completed_outcome(wf: Any, outcomes: dict[str, str]) -> str:
    """The outcome of the end event the completed instance reached (``succeeded`` when undeclared)."""
    from SpiffWorkflow.util.task import TaskState

    reached = [t.task_spec.bpmn_id for t in wf.get_tasks(state=TaskState.COMPLETED)
               if type(t.task_spec).__name__ == "EndEvent" and t.task_spec.bpmn_id]
    for bpmn_id in reversed(reached):
        if bpmn_id in outcomes:
            return outcomes[bpmn_id]
    return "succeeded"


def exit_code(state: str, outcome: str | None, error_exit: int | None = None) -> int:
    """The exit code of a command that drove an instance to ``state``/``outcome``."""
    if state == "interrupted":
        return INTERRUPTED
    if state == "error" or outcome == "error":
        return error_exit or 1
    return EXIT_BY_OUTCOME.get(outcome or "", 0)


__all__ = ["BPMN", "OUTCOMES", "completed_outcome", "declared_outcomes", "exit_code"]
