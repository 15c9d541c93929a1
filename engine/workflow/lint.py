"""Checks on a BPMN document beyond the XSD: a diagram for every element, Python conditions.

The XSD does not require a diagram, yet a file without BPMNDI shapes opens blank in Camunda Modeler /
bpmn.io; and Spiff evaluates conditions as Python, so a Camunda ``${...}`` or FEEL ``=...`` expression
parses fine and fails only when the gateway runs. Both are caught here, before anything runs.
"""

from __future__ import annotations

import ast

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
NS = {"bpmn": BPMN, "bpmndi": BPMNDI}

FLOW_NODES = (
    "startEvent", "endEvent", "intermediateCatchEvent", "intermediateThrowEvent", "boundaryEvent",
    "task", "scriptTask", "userTask", "manualTask", "serviceTask", "sendTask", "receiveTask",
    "businessRuleTask", "callActivity", "subProcess", "transaction", "adHocSubProcess",
    "exclusiveGateway", "parallelGateway", "inclusiveGateway", "eventBasedGateway", "complexGateway",
)


def diagram_problems(root) -> list[str]:
    """Flow nodes without a BPMNShape and sequence flows without a BPMNEdge, one line each."""
    shapes = set(root.xpath("//bpmndi:BPMNShape/@bpmnElement", namespaces=NS))
    edges = set(root.xpath("//bpmndi:BPMNEdge/@bpmnElement", namespaces=NS))
    problems = []
    for tag in FLOW_NODES:
        for node in root.xpath(f"//bpmn:process//bpmn:{tag}", namespaces=NS):
            if node.get("id") not in shapes:
                problems.append(f"{tag} {node.get('id')} has no BPMNShape in the diagram")
    for flow in root.xpath("//bpmn:process//bpmn:sequenceFlow", namespaces=NS):
        if flow.get("id") not in edges:
            problems.append(f"sequenceFlow {flow.get('id')} has no BPMNEdge in the diagram")
    return problems


def condition_problems(root) -> list[str]:
    """Sequence-flow conditions that are not Python expressions (the language Spiff evaluates)."""
    problems = []
    for flow in root.xpath("//bpmn:sequenceFlow[bpmn:conditionExpression]", namespaces=NS):
        text = (flow.find(f"{{{BPMN}}}conditionExpression").text or "").strip()
        try:
            ast.parse(text, mode="eval")
        except SyntaxError:
            problems.append(f"sequenceFlow {flow.get('id')}: condition {text!r} is not a Python expression "
                            "(Camunda ${...} and FEEL are not supported)")
    return problems
