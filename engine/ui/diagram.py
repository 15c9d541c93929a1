"""An instance's BPMN diagram, drawn by bpmn-js in the browser, with each activity's state marked.

bpmn-js (the navigated viewer: pan and zoom) is vendored in ``engine/ui/static/bpmn-js/`` and served by
Streamlit's static file serving at ``/app/static/bpmn-js/``: nothing is fetched from a CDN (see
``static/bpmn-js/SOURCE.md`` for where the files came from and how to update them). Completed
activities are green, the active one amber, a failed one red; the legend says it in words too.
"""

from __future__ import annotations

import json

import streamlit as st

STATIC = "/app/static/bpmn-js"
MARKERS = {"completed": ("procos-completed", "#1a7f37", "#dafbe1"), "active": ("procos-active", "#9a6700", "#fff8c5"),
           "failed": ("procos-failed", "#cf222e", "#ffebe9")}


def _style() -> str:
    rules = []
    for cls, stroke, fill in MARKERS.values():
        rules.append(f".{cls}:not(.djs-connection) .djs-visual > :nth-child(1) "
                     f"{{ stroke: {stroke} !important; fill: {fill} !important; stroke-width: 3px !important; }}")
    return "\n".join(rules)


def page_html(xml: str, states: dict[str, list[str]], height: int) -> str:
    """The HTML document of the diagram frame (the XML and states as JSON, ``</`` escaped)."""
    def js(value: object) -> str:
        return json.dumps(value).replace("</", "<\\/")

    marks = {cls: states.get(key, []) for key, (cls, _, _) in MARKERS.items()}
    return f"""<!doctype html><html><head><meta charset="utf-8">
<link rel="stylesheet" href="{STATIC}/diagram-js.css"><link rel="stylesheet" href="{STATIC}/bpmn-js.css">
<style>html,body{{margin:0;font-family:sans-serif}} #canvas{{height:{height - 28}px;border:1px solid #ddd}}
#status{{font-size:12px;color:#555;padding:4px}} {_style()}</style></head>
<body><div id="canvas"></div><div id="status">loading the diagram…</div>
<script src="{STATIC}/bpmn-navigated-viewer.production.min.js"></script>
<script>
const xml = {js(xml)};
const marks = {js(marks)};
const status = document.getElementById('status');
if (typeof BpmnJS === 'undefined') {{
  status.textContent = 'error: bpmn-js did not load from {STATIC}';
}} else {{
  const viewer = new BpmnJS({{container: '#canvas'}});
  viewer.importXML(xml).then(function (result) {{
    const canvas = viewer.get('canvas');
    const registry = viewer.get('elementRegistry');
    canvas.zoom('fit-viewport');
    let marked = 0;
    for (const [cls, ids] of Object.entries(marks)) {{
      for (const id of ids) {{ if (registry.get(id)) {{ canvas.addMarker(id, cls); marked++; }} }}
    }}
    status.textContent = 'rendered: ' + marked + ' activities marked, ' + result.warnings.length + ' warnings';
    document.body.dataset.rendered = 'true';
  }}).catch(function (err) {{ status.textContent = 'error: ' + err.message; }});
}}
</script></body></html>"""


def show(diagram: dict, title: str, height: int = 460) -> None:
    """Draw ``diagram`` (from :func:`engine.api.processes.instance_diagram`) in a frame named ``title``.

    The frame's HTML is ours (the XML of a process file the loader accepted, JSON-escaped), never user input."""
    st.iframe(page_html(diagram["xml"], diagram, height), height=height, alt=title)
