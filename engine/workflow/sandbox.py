"""What a process file may contain: BPMN is data, and only pinned script tasks run code.

Anyone who can write a ``.bpmn`` file into a ``PROCOS_PROCESSES`` folder chooses its content, so a file
is refused when it is loaded (before anything of it is parsed by SpiffWorkflow or run) if it holds:

- an element outside :data:`ALLOWED` (business rule tasks run DMN cells as Python, service tasks call
  operators, messages carry payload and correlation expressions, ...), with the reason when known;
- any element or attribute in SpiffWorkflow's extension namespace (``spiffworkflow:preScript`` /
  ``postScript`` run Python around any task; payload expressions, service operators, ...);
- inline ``<bpmn:script>`` code, or a script task without ``procos:script`` (+ ``procos:sha256``);
- anything shaped like an embedded versioned-script stub (its marker), in any text, attribute or comment;
- an expression (gateway condition, timer, loop or conditional-event expression) outside the restricted
  condition language of :mod:`.conditions`.

:func:`refusals` lists every problem, each naming the element (tag and id).
"""

from __future__ import annotations

from lxml import etree

from engine.errors import ExpressionRefused

from . import conditions
from .lint import BPMN, PROCOS_NS

SPIFF_NS = "http://spiffworkflow.org/bpmn/schema/1.0/core"
STUB_TOKEN = "procos:versioned-script"  # the marker of ResolvedScript.to_stub(); never in a process file

# The BPMN elements procos runs; every other one is refused.
ALLOWED = frozenset("""
    definitions process collaboration participant laneSet lane childLaneSet flowNodeRef documentation
    extensionElements textAnnotation text association group category categoryValue error escalation signal
    startEvent endEvent intermediateThrowEvent intermediateCatchEvent boundaryEvent
    task userTask manualTask scriptTask subProcess transaction callActivity
    exclusiveGateway parallelGateway inclusiveGateway eventBasedGateway sequenceFlow incoming outgoing
    errorEventDefinition terminateEventDefinition escalationEventDefinition signalEventDefinition
    cancelEventDefinition timerEventDefinition conditionalEventDefinition
    conditionExpression condition timeDate timeDuration timeCycle loopCardinality completionCondition loopCondition
    standardLoopCharacteristics multiInstanceLoopCharacteristics loopDataInputRef loopDataOutputRef
    inputDataItem outputDataItem dataObject dataObjectReference dataInputAssociation dataOutputAssociation
    sourceRef targetRef ioSpecification dataInput dataOutput inputSet outputSet dataInputRefs dataOutputRefs
""".split())

# Elements whose text SpiffWorkflow evaluates as an expression: each must pass conditions.check.
EXPRESSIONS = frozenset("""
    conditionExpression condition timeDate timeDuration timeCycle loopCardinality completionCondition loopCondition
""".split())

WHY_REFUSED = {
    "businessRuleTask": "business rule tasks evaluate DMN decision tables whose cells are Python",
    "serviceTask": "service tasks call operators outside pinned scripts",
    "sendTask": "messages carry payload and correlation expressions; message tasks are not supported",
    "receiveTask": "messages carry payload and correlation expressions; message tasks are not supported",
    "message": "messages carry payload and correlation expressions; messages are not supported",
    "messageEventDefinition": "message events carry payload expressions; messages are not supported",
    "messageFlow": "messages are not supported",
    "correlationProperty": "correlation retrieval expressions are evaluated; messages are not supported",
    "correlationPropertyRetrievalExpression": "correlation expressions are evaluated; not supported",
    "script": "inline script code never runs; name a pinned script with procos:script + procos:sha256",
    "dataStore": "data stores are application code; not supported",
    "dataStoreReference": "data stores are application code; not supported",
    "complexGateway": "complex gateway activation conditions are not supported",
    "adHocSubProcess": "ad-hoc sub-processes are not supported",
    "assignment": "data assignments are expressions; not supported",
    "transformation": "data transformations are expressions; not supported",
}


def refusals(root, raw: bytes) -> list[str]:
    """Every reason to refuse the document ``root`` (parsed from ``raw``), one line each."""
    problems = stub_markers(root, raw)
    for node in root.iter():
        if not isinstance(node.tag, str):
            continue  # comments and processing instructions: checked for stub markers above
        problems.extend(_element_problems(node))
    return problems


def stub_markers(root, raw: bytes) -> list[str]:
    """Places that hold the versioned-script stub marker (raw bytes, then every text, tail and attribute)."""
    found = []
    for node in root.iter():
        texts = [node.text, node.tail, *node.attrib.values()] if isinstance(node.tag, str) \
            else [node.text, node.tail]
        if any(STUB_TOKEN in (t or "").lower() for t in texts):
            found.append(f"{_describe(node)}: holds the versioned-script stub marker {STUB_TOKEN!r} "
                         "(stubs are made by procos at deployment, never read from a file)")
    if not found and STUB_TOKEN in raw.decode("utf-8", errors="replace").lower():
        found.append(f"the file holds the versioned-script stub marker {STUB_TOKEN!r} "
                     "(stubs are made by procos at deployment, never read from a file)")
    return found


def _element_problems(node) -> list[str]:
    qname = etree.QName(node)
    problems = [f"{_describe(node)}: attribute spiffworkflow:{etree.QName(a).localname} is refused "
                "(SpiffWorkflow extensions can run Python)"
                for a in node.attrib if etree.QName(a).namespace == SPIFF_NS]
    if qname.namespace == SPIFF_NS:
        what = qname.localname
        why = "runs Python around the task" if what in ("preScript", "postScript") \
            else "is a SpiffWorkflow extension, which procos does not run"
        problems.append(f"spiffworkflow:{what} in {_describe(_owner(node))}: refused, it {why}")
    elif qname.namespace == BPMN:
        problems.extend(_bpmn_problems(node, qname.localname))
    return problems


def _bpmn_problems(node, tag: str) -> list[str]:
    if tag == "script":
        return [f"inline <bpmn:script> in {_describe(_owner(node))}: refused ({WHY_REFUSED['script']})"]
    if tag not in ALLOWED:
        why = WHY_REFUSED.get(tag, "not an element procos runs")
        return [f"{_describe(node)}: refused ({why})"]
    if tag == "scriptTask" and not node.get(f"{{{PROCOS_NS}}}script"):
        return [f"{_describe(node)}: a script task needs procos:script and procos:sha256 (a pinned script file)"]
    if tag in EXPRESSIONS:
        try:
            conditions.check(node.text, where=f"{tag} of {_describe(_owner(node))}")
        except ExpressionRefused as exc:
            text = (node.text or "").strip()
            camunda = " (Camunda ${...} and FEEL are not supported)" if "${" in text or text.startswith("=") else ""
            return [exc.message + camunda]
    return []


def _owner(node):
    """The nearest ancestor (or ``node``) with an id: the BPMN element a problem belongs to."""
    while node is not None and node.get("id") is None:
        node = node.getparent()
    return node


def _describe(node) -> str:
    if node is None:
        return "the document"
    if not isinstance(node.tag, str):
        owner = _owner(node.getparent())
        return f"a comment in {_describe(owner)}"
    name = etree.QName(node).localname
    return f"{name} {node.get('id')}" if node.get("id") else name
