"""The one SpiffWorkflow serializer every part of the engine saves and loads instances with."""

from __future__ import annotations

from functools import cache
from typing import Any


@cache
def serializer() -> Any:
    from SpiffWorkflow.bpmn.serializer.workflow import BpmnWorkflowSerializer
    from SpiffWorkflow.spiff.serializer.config import SPIFF_CONFIG

    return BpmnWorkflowSerializer(BpmnWorkflowSerializer.configure(SPIFF_CONFIG))
