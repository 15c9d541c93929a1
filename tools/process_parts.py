"""Blocks shared by the product processes that ``tools/build_processes.py`` generates."""

from __future__ import annotations

from bpmn_model import Proc


def approval(p: Proc, gateway_col: int, gateway_row: int, go: str, what: str) -> None:
    """The prod/dev approval block: environment gateway, Approver user task, auto-approval, rejection."""
    c = gateway_col
    p.node("Gateway_environment", "xgw", "Environment?", c, gateway_row, default="Flow_dev")
    p.node("Task_approve", "user", f"Approve the {what}", c + 1, 1,
           doc=f"An Approver decides: procos task complete TASK_ID --as USER --approve|--reject. In prod the "
               f"user who started the {what} may not approve it.")
    p.node("Task_auto_approve", "script", "Approve automatically (dev)", c + 1, 2,
           script="scripts/v1/auto_approve.py")
    p.node("Gateway_approved", "xgw", "Approved?", c + 2, 1, default="Flow_rejected")
    p.node("Task_record_rejection", "script", "Record the rejection", c + 3, 1,
           script="scripts/v1/record_rejection.py")
    p.node("Event_rejected", "end", "Rejected", c + 4, 1, outcome="rejected")
    p.flow("Flow_prod", "Gateway_environment", "Task_approve", condition='environment == "prod"', name="prod")
    p.flow("Flow_dev", "Gateway_environment", "Task_auto_approve", name="dev")
    p.flow("Flow_decided", "Task_approve", "Gateway_approved")
    p.flow("Flow_approved", "Gateway_approved", go, condition="approved == True", name="approved")
    p.flow("Flow_rejected", "Gateway_approved", "Task_record_rejection", name="rejected")
    p.flow("Flow_rejection_recorded", "Task_record_rejection", "Event_rejected")
    p.flow("Flow_auto_approved", "Task_auto_approve", go)
