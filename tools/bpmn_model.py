"""A small BPMN model with a diagram layout, and its XML rendering (shared by the BPMN generators).

Nodes sit on a grid (column, row); lanes group rows; every node gets a BPMNShape and every flow a
BPMNEdge, so the output opens in bpmn.io and Camunda Modeler and passes bpmnlint's recommended rules.
Used by ``tools/build_processes.py`` (the product processes) and ``tests/fixtures/make_fixtures.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from xml.sax.saxutils import escape, quoteattr

SIZES = {"start": (36, 36), "end": (36, 36), "errend": (36, 36), "script": (100, 80), "user": (100, 80),
         "xgw": (50, 50)}
TAGS = {"start": "startEvent", "end": "endEvent", "errend": "endEvent", "script": "scriptTask",
        "user": "userTask", "xgw": "exclusiveGateway"}
SCRIPT_FAILED = ("Error_script_failed", "script_failed")


@dataclass
class Node:
    id: str
    kind: str
    name: str
    col: int
    row: int
    script: str | None = None
    default: str | None = None
    doc: str | None = None
    outcome: str | None = None  # end events: procos:outcome (succeeded when None)
    timeout: str | None = None  # script tasks: procos:timeout (e.g. "30m"), overriding the process's

    @property
    def center(self) -> tuple[int, int]:
        return 160 + self.col * 150, 100 + self.row * 120


@dataclass
class Boundary:
    id: str
    name: str
    attached: str


@dataclass
class Flow:
    id: str
    source: str
    target: str
    condition: str | None = None
    name: str | None = None
    via: list[tuple[int, int]] | None = None  # explicit waypoints (loops)


@dataclass
class Var:
    """A declared process variable (see engine/workflow/variables.py for the types)."""

    name: str
    type: str
    description: str
    required: bool = False
    default: str | None = None  # as JSON text
    choices: str | None = None
    existing: bool = False


@dataclass
class Proc:
    id: str
    name: str
    doc: str = ""
    variables: list[Var] = field(default_factory=list)
    nodes: list[Node] = field(default_factory=list)
    boundaries: list[Boundary] = field(default_factory=list)
    flows: list[Flow] = field(default_factory=list)
    lanes: list[tuple[str, list[int]]] = field(default_factory=list)  # (lane name, rows)
    errors: list[tuple[str, str]] = field(default_factory=list)  # (error id, error code) for error ends
    timeout: str | None = None  # procos:timeout: the default limit of every script task

    def node(self, *args, **kwargs) -> None:
        self.nodes.append(Node(*args, **kwargs))

    def flow(self, *args, **kwargs) -> None:
        self.flows.append(Flow(*args, **kwargs))

    def chain(self, prefix: str, ids: list[str]) -> None:
        for i, (a, b) in enumerate(zip(ids, ids[1:], strict=False), start=1):
            self.flow(f"Flow_{prefix}{i}", a, b)

    def get(self, ident: str) -> Node:
        return next(n for n in self.nodes if n.id == ident)


def bounds(p: Proc, ident: str) -> tuple[int, int, int, int]:
    for n in p.nodes:
        if n.id == ident:
            w, h = SIZES[n.kind]
            cx, cy = n.center
            return cx - w // 2, cy - h // 2, w, h
    b = next(b for b in p.boundaries if b.id == ident)
    x, y, w, h = bounds(p, b.attached)
    return x + w - 38, y + h - 18, 36, 36


def waypoints(p: Proc, f: Flow) -> list[tuple[int, int]]:
    if f.via:
        return f.via
    sx, sy, sw, sh = bounds(p, f.source)
    tx, ty, tw, th = bounds(p, f.target)
    scx, scy, tcy = sx + sw // 2, sy + sh // 2, ty + th // 2
    if scy == tcy:
        return [(sx + sw, scy), (tx, tcy)]
    if tcy > scy:  # going down: leave from the bottom, enter from the left
        return [(scx, sy + sh), (scx, tcy), (tx, tcy)]
    return [(scx, sy), (scx, tcy), (tx, tcy)]  # going up: leave from the top, enter from the left


def loop_back(p: Proc, source: str, target: str) -> list[tuple[int, int]]:
    """Waypoints for a flow back to an earlier node on the same row, drawn above the row."""
    sx, sy, sw, _ = bounds(p, source)
    tx, ty, tw, _ = bounds(p, target)
    top = min(sy, ty) - 20
    return [(sx + sw // 2, sy), (sx + sw // 2, top), (tx + tw // 2, top), (tx + tw // 2, ty)]


def _variables(variables: list[Var]) -> list[str]:
    if not variables:
        return []
    out = ["    <bpmn:extensionElements>", "      <procos:variables>"]
    for v in variables:
        attrs = f'name="{v.name}" type="{v.type}"'
        if v.required:
            attrs += ' required="true"'
        if v.existing:
            attrs += ' existing="true"'
        if v.default is not None:
            attrs += f" default={quoteattr(v.default)}"
        if v.choices:
            attrs += f' choices="{v.choices}"'
        out.append(f"        <procos:variable {attrs} description={quoteattr(v.description)} />")
    return out + ["      </procos:variables>", "    </bpmn:extensionElements>"]


def _documentation(text: str | None, indent: str) -> list[str]:
    return [f"{indent}<bpmn:documentation>{escape(text)}</bpmn:documentation>"] if text else []


def render(p: Proc, pin: Callable[[str], str], *, namespace: str = "http://procos.dev/processes",
           exporter: str = "tools/build_processes.py") -> str:
    """The BPMN 2.0 XML of ``p`` with its diagram; ``pin(script)`` gives each script's sha256."""
    out = ['<?xml version="1.0" encoding="UTF-8"?>',
           '<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL" '
           'xmlns:bpmndi="http://www.omg.org/spec/BPMN/20100524/DI" '
           'xmlns:dc="http://www.omg.org/spec/DD/20100524/DC" '
           'xmlns:di="http://www.omg.org/spec/DD/20100524/DI" '
           'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
           'xmlns:procos="http://procos.dev/schema/bpmn/1.0" '
           f'id="Definitions_{p.id}" targetNamespace="{namespace}" '
           f'exporter="{exporter}" exporterVersion="1">']
    errors = ([SCRIPT_FAILED] if p.boundaries else []) + p.errors
    for ident, code in errors:
        out.append(f'  <bpmn:error id="{ident}" name="{code}" errorCode="{code}" />')
    if p.lanes:
        out.append(f'  <bpmn:collaboration id="Collaboration_{p.id}">')
        out.append(f'    <bpmn:participant id="Participant_{p.id}" name={quoteattr(p.name)} processRef="{p.id}" />')
        out.append('  </bpmn:collaboration>')
    limit = f' procos:timeout="{p.timeout}"' if p.timeout else ""
    out.append(f'  <bpmn:process id="{p.id}" name={quoteattr(p.name)} isExecutable="true"{limit}>')
    out.extend(_documentation(p.doc, "    "))
    out.extend(_variables(p.variables))
    if p.lanes:
        out.append(f'    <bpmn:laneSet id="LaneSet_{p.id}">')
        for lane, rows in p.lanes:
            out.append(f'      <bpmn:lane id="Lane_{lane}" name="{lane}">')
            out.extend(f'        <bpmn:flowNodeRef>{n.id}</bpmn:flowNodeRef>' for n in p.nodes if n.row in rows)
            out.extend(f'        <bpmn:flowNodeRef>{b.id}</bpmn:flowNodeRef>' for b in p.boundaries
                       if p.get(b.attached).row in rows)
            out.append('      </bpmn:lane>')
        out.append('    </bpmn:laneSet>')
    for n in p.nodes:
        attrs = f'id="{n.id}" name={quoteattr(n.name)}'
        if n.script:
            attrs += f' procos:script="{n.script}" procos:sha256="{pin(n.script)}"'
        if n.default:
            attrs += f' default="{n.default}"'
        if n.outcome:
            attrs += f' procos:outcome="{n.outcome}"'
        if n.timeout:
            attrs += f' procos:timeout="{n.timeout}"'
        out.append(f'    <bpmn:{TAGS[n.kind]} {attrs}>')
        out.extend(_documentation(n.doc, "      "))
        out.extend(f'      <bpmn:incoming>{f.id}</bpmn:incoming>' for f in p.flows if f.target == n.id)
        out.extend(f'      <bpmn:outgoing>{f.id}</bpmn:outgoing>' for f in p.flows if f.source == n.id)
        if n.kind == "errend":
            ident = p.errors[0][0]
            out.append(f'      <bpmn:errorEventDefinition id="{n.id}_def" errorRef="{ident}" />')
        out.append(f'    </bpmn:{TAGS[n.kind]}>')
    for b in p.boundaries:
        out.append(f'    <bpmn:boundaryEvent id="{b.id}" name={quoteattr(b.name)} attachedToRef="{b.attached}">')
        out.extend(f'      <bpmn:outgoing>{f.id}</bpmn:outgoing>' for f in p.flows if f.source == b.id)
        out.append(f'      <bpmn:errorEventDefinition id="{b.id}_def" errorRef="{SCRIPT_FAILED[0]}" />')
        out.append('    </bpmn:boundaryEvent>')
    for f in p.flows:
        head = f'    <bpmn:sequenceFlow id="{f.id}"'
        if f.name:
            head += f' name={quoteattr(f.name)}'
        head += f' sourceRef="{f.source}" targetRef="{f.target}"'
        if f.condition is None:
            out.append(head + ' />')
        else:
            out.append(head + '>')
            out.append('      <bpmn:conditionExpression xsi:type="bpmn:tFormalExpression">'
                       f'{escape(f.condition)}</bpmn:conditionExpression>')
            out.append('    </bpmn:sequenceFlow>')
    out.append('  </bpmn:process>')
    out.extend(render_diagram(p))
    out.append('</bpmn:definitions>')
    return "\n".join(out) + "\n"


def render_diagram(p: Proc) -> list[str]:
    plane_ref = f"Collaboration_{p.id}" if p.lanes else p.id
    out = [f'  <bpmndi:BPMNDiagram id="Diagram_{p.id}">',
           f'    <bpmndi:BPMNPlane id="Plane_{p.id}" bpmnElement="{plane_ref}">']
    if p.lanes:
        width = 160 + (max(n.col for n in p.nodes) + 1) * 150
        last_row = max(max(rows) for _, rows in p.lanes)
        out.append(shape(f"Participant_{p.id}", 40, 30, width, (last_row + 1) * 120, horizontal=True))
        for lane, rows in p.lanes:
            y = 30 + min(rows) * 120
            out.append(shape(f"Lane_{lane}", 70, y, width - 30, len(rows) * 120, horizontal=True))
    out.extend(shape(n.id, *bounds(p, n.id)) for n in p.nodes)
    out.extend(shape(b.id, *bounds(p, b.id)) for b in p.boundaries)
    for f in p.flows:
        out.append(f'      <bpmndi:BPMNEdge id="{f.id}_di" bpmnElement="{f.id}">')
        out.extend(f'        <di:waypoint x="{x}" y="{y}" />' for x, y in waypoints(p, f))
        out.append('      </bpmndi:BPMNEdge>')
    out += ['    </bpmndi:BPMNPlane>', '  </bpmndi:BPMNDiagram>']
    return out


def shape(ident: str, x: int, y: int, w: int, h: int, horizontal: bool = False) -> str:
    extra = ' isHorizontal="true"' if horizontal else ""
    return (f'      <bpmndi:BPMNShape id="{ident}_di" bpmnElement="{ident}"{extra}>\n'
            f'        <dc:Bounds x="{x}" y="{y}" width="{w}" height="{h}" />\n'
            '      </bpmndi:BPMNShape>')
