"""Find, validate and deploy BPMN processes; each file is versioned by the sha256 of its bytes.

Files are searched in ``PROCOS_PROCESSES`` folders, then the ``processes/`` folder shipped next to the
package; the first file that defines a process name wins. Every file is validated against the BPMN 2.0
XSD (plus Spiff's extension XSD). Deploying resolves and pin-checks every script task's versioned
script (:mod:`.scripts`) and embeds the code in the spec, so an instance keeps the definition and the
script bytes it started with when the file changes later.

The design's literal ``<bpmn:script src="..." sha256="..."/>`` is not schema-valid; it is rewritten
to the ``procos:script`` / ``procos:sha256`` attributes before validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from engine.errors import ProcessNotFound, ScriptRefused, WorkflowError

from .lint import BPMN, NS, condition_problems, diagram_problems
from .scripts import resolve_script, sha256_hex
from .settings import INSTALLED_ROOT, PACKAGE_ROOT, Settings

PROCOS_NS = "http://procos.dev/schema/bpmn/1.0"
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, remove_comments=False)


@dataclass
class ProcessFile:
    """One BPMN file: its path, content version, executable process ids, and diagram warnings."""

    path: Path
    version: str
    processes: list[str]
    root: Any = field(repr=False)
    warnings: list[str] = field(default_factory=list)

    @property
    def project_dir(self) -> Path:
        """The folder that holds ``processes/`` and ``scripts/`` (relative script paths start here)."""
        return self.path.parent.parent


@dataclass
class Deployment:
    """A process ready to start: its spec (scripts embedded), subprocess specs, version and file."""

    name: str
    version: str
    path: Path
    spec: Any
    subprocess_specs: dict
    scripts: list = field(default_factory=list)


def read_process_file(path: Path) -> ProcessFile:
    """Parse, rewrite the literal script form, and XSD-validate one BPMN file."""
    from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
    from SpiffWorkflow.spiff.parser.process import VALIDATOR

    data = path.read_bytes()
    try:
        root = etree.fromstring(data, parser=_XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise WorkflowError(f"{path}: not well-formed XML: {exc}") from exc
    rewrite_literal_scripts(root)
    try:
        VALIDATOR.validate(root, str(path))
    except ValidationException as exc:
        raise WorkflowError(f"{path}: does not validate against the BPMN 2.0 XSD: {exc}",
                            hint="open the file in Camunda Modeler or bpmn.io and save it again") from exc
    ids = [p.get("id") for p in root.xpath("//bpmn:process", namespaces=NS) if p.get("isExecutable") != "false"]
    return ProcessFile(path=path, version=sha256_hex(data)[:16], processes=ids, root=root,
                       warnings=diagram_problems(root))


def rewrite_literal_scripts(root) -> int:
    """Move ``<bpmn:script src=... sha256=...>`` into the scriptTask's procos attributes; count them."""
    count = 0
    for script in root.xpath("//bpmn:scriptTask/bpmn:script[@src]", namespaces=NS):
        task = script.getparent()
        task.set(f"{{{PROCOS_NS}}}script", script.get("src"))
        pin = script.get("sha256") or script.get(f"{{{PROCOS_NS}}}sha256")
        if pin:
            task.set(f"{{{PROCOS_NS}}}sha256", pin)
        task.remove(script)
        count += 1
    return count


class Catalog:
    """The processes visible under the given settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def bpmn_paths(self) -> list[Path]:
        return [p for d in self.settings.process_dirs if d.is_dir() for p in sorted(d.glob("*.bpmn"))]

    def files(self) -> list[ProcessFile]:
        return [read_process_file(p) for p in self.bpmn_paths()]

    def find(self, name: str) -> ProcessFile:
        for path in self.bpmn_paths():
            pf = read_process_file(path)
            if name in pf.processes or (path.stem == name and len(pf.processes) == 1):
                return pf
        raise ProcessNotFound(f"no process named {name!r} in {', '.join(map(str, self.settings.process_dirs))}",
                              hint="procos process list shows the deployed processes")

    def deploy(self, name: str) -> Deployment:
        """Parse ``name``'s file and embed its pin-checked scripts; raises ScriptRefused on a bad pin."""
        pf = self.find(name)
        process_id = name if name in pf.processes else pf.processes[0]
        problems = condition_problems(pf.root)
        if problems:
            raise WorkflowError(f"{pf.path}: " + "; ".join(problems),
                                hint="write conditions as Python expressions, e.g. approved == True")
        parser = _make_parser()
        parser.add_bpmn_xml(pf.root, str(pf.path))
        spec = parser.get_spec(process_id)
        subprocess_specs = parser.get_subprocess_specs(process_id)
        bases = [pf.project_dir, pf.path.parent, PACKAGE_ROOT, INSTALLED_ROOT]
        scripts = []
        for s in [spec, *subprocess_specs.values()]:
            scripts.extend(self._embed_scripts(s, pf, bases))
        return Deployment(name=process_id, version=pf.version, path=pf.path, spec=spec,
                          subprocess_specs=subprocess_specs, scripts=scripts)

    def _embed_scripts(self, spec, pf: ProcessFile, bases: list[Path]) -> list:
        nodes = {n.get("id"): n for n in pf.root.xpath("//bpmn:scriptTask", namespaces=NS)}
        resolved = []
        for ts in spec.task_specs.values():
            if not hasattr(ts, "script") or ts.bpmn_id not in nodes:
                continue
            node = nodes[ts.bpmn_id]
            source = node.get(f"{{{PROCOS_NS}}}script")
            if not source or node.find(f"{{{BPMN}}}script") is not None:
                raise ScriptRefused(
                    f"script task {ts.bpmn_id!r} in {pf.path}: needs procos:script and procos:sha256 "
                    "and no inline <bpmn:script>", hint='procos:script="scripts/v1/NAME.py" procos:sha256="..."')
            script = resolve_script(source, node.get(f"{{{PROCOS_NS}}}sha256"), task=ts.bpmn_id,
                                    process_file=str(pf.path), base_dirs=bases,
                                    cache_dir=self.settings.script_cache)
            ts.script = script.to_stub()
            resolved.append(script)
        return resolved


def _make_parser():
    from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

    return SpiffBpmnParser()  # the file was validated by read_process_file
