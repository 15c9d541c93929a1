"""Checks on a BPMN document beyond the XSD: a diagram for every element (warnings, not errors).

The XSD does not require a diagram, yet a file without BPMNDI shapes opens blank in Camunda Modeler /
bpmn.io. What a file may *run* (scripts, conditions, extensions) is :mod:`.sandbox`'s job; a Camunda
``${...}`` or FEEL ``=...`` condition is refused there, before anything runs.
"""

from __future__ import annotations

BPMN = "http://www.omg.org/spec/BPMN/20100524/MODEL"
BPMNDI = "http://www.omg.org/spec/BPMN/20100524/DI"
PROCOS_NS = "http://procos.dev/schema/bpmn/1.0"
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
