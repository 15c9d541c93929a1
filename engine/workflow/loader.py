"""Find, validate and deploy BPMN processes; each file is versioned by the sha256 of its bytes.

Files are searched in ``PROCOS_PROCESSES`` folders and the ``processes/`` folder shipped next to the
package. A process id is defined once: an id found in two files (for example an ``export_snapshot.bpmn``
dropped into ``PROCOS_PROCESSES``) is an error naming both, so the shipped definitions cannot be
shadowed. Every file is validated against the BPMN 2.0 XSD (plus Spiff's extension XSD) and refused
when it holds code outside pinned script tasks (:mod:`.sandbox`). Deploying resolves and pin-checks
every script task's versioned script (:mod:`.scripts`) and embeds the code in the spec, so an instance
keeps the definition and the script bytes it started with when the file changes later.

The design's literal ``<bpmn:script src="..." sha256="..."/>`` is not schema-valid; it is rewritten
to the ``procos:script`` / ``procos:sha256`` attributes before validation.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lxml import etree

from engine.errors import ProcessNotFound, ProcessRefused, ProcosError, ScriptRefused, WorkflowError

from .lint import BPMN, NS, PROCOS_NS, diagram_problems
from .sandbox import refusals
from .scripts import resolve_script, sha256_hex
from .settings import INSTALLED_ROOT, PACKAGE_ROOT, Settings

__all__ = ["NS", "PROCOS_NS", "Catalog", "Deployment", "ProcessFile", "read_process_file"]
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
    variables: list | None = None  # the declared variables (see .variables), None when undeclared
    outcomes: dict = field(default_factory=dict)  # end event id -> outcome (see .outcomes)
    timeouts: dict = field(default_factory=dict)  # script task id -> seconds (procos:timeout, see .timeouts)


def read_process_file(path: Path) -> ProcessFile:
    """Parse, rewrite the literal script form, XSD-validate and sandbox-check one BPMN file.

    Raises ProcessRefused (naming the file and every offending element) when the file holds code
    outside pinned script tasks or an expression outside the condition language."""
    from SpiffWorkflow.bpmn.parser.ValidationException import ValidationException
    from SpiffWorkflow.spiff.parser.process import VALIDATOR

    data = path.read_bytes()
    root = _parse_xml(path, data)
    rewrite_literal_scripts(root)
    try:
        VALIDATOR.validate(root, str(path))
    except ValidationException as exc:
        raise WorkflowError(f"{path}: does not validate against the BPMN 2.0 XSD: {exc}",
                            hint="open the file in Camunda Modeler or bpmn.io and save it again") from exc
    problems = refusals(root, data)
    if problems:
        raise ProcessRefused(f"{path}: refused, nothing of it runs: " + "; ".join(problems),
                             hint="only script tasks naming a pinned script (procos:script + procos:sha256) "
                                  "run code; conditions use the language of docs/security-processes.md")
    ids = [p.get("id") for p in root.xpath("//bpmn:process", namespaces=NS) if p.get("isExecutable") != "false"]
    return ProcessFile(path=path, version=sha256_hex(data)[:16], processes=ids, root=root,
                       warnings=diagram_problems(root))


def _parse_xml(path: Path, data: bytes):
    try:
        return etree.fromstring(data, parser=_XML_PARSER)
    except etree.XMLSyntaxError as exc:
        raise WorkflowError(f"{path}: not well-formed XML: {exc}") from exc


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
    """The processes visible under the given settings; each process id is defined by one file."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def bpmn_paths(self) -> list[Path]:
        """Every ``.bpmn`` file of every process folder, once each (symlinks resolved), in folder order."""
        seen: dict[Path, None] = {}
        for folder in self.settings.process_dirs:
            if folder.is_dir():
                seen.update((p.resolve(), None) for p in sorted(folder.glob("*.bpmn")))
        return list(seen)

    def definitions(self) -> dict[str, list[Path]]:
        """Process id -> the files that define it, over every well-formed file of every folder."""
        return self._scan()[0]

    def _scan(self) -> tuple[dict[str, list[Path]], list[Path]]:
        found: dict[str, list[Path]] = {}
        unreadable = []
        for path in self.bpmn_paths():
            try:
                root = _parse_xml(path, path.read_bytes())
            except (WorkflowError, OSError):
                unreadable.append(path)  # defines nothing; listing() shows why
                continue
            for pid in root.xpath("//bpmn:process/@id", namespaces=NS):
                found.setdefault(str(pid), []).append(path)
        return found, unreadable

    def find(self, name: str) -> ProcessFile:
        """The one file defining process ``name``; ProcessRefused when two files define it."""
        defined, unreadable = self._scan()
        paths = defined.get(name, [])
        if len(paths) > 1:
            raise duplicate_error(name, paths)
        pf = read_process_file(paths[0]) if paths else None
        if pf is None or name not in pf.processes:
            where = f"{paths[0]} (not executable)" if paths else ", ".join(map(str, self.settings.process_dirs))
            broken = f"; not well-formed XML: {', '.join(map(str, unreadable))}" if unreadable and not paths else ""
            raise ProcessNotFound(f"no process named {name!r} in {where}{broken}",
                                  hint="procos process list shows the deployed processes and broken files")
        return pf

    def listing(self) -> list[dict]:
        """Every process file: name, version, file and diagram warnings, or the error that refuses it."""
        duplicates = {n: ps for n, ps in self.definitions().items() if len(ps) > 1}
        out: list[dict] = []
        for path in self.bpmn_paths():
            try:
                pf = read_process_file(path)
            except ProcosError as exc:
                out.append({"name": path.stem, "version": None, "file": str(path), "error": str(exc)})
                continue
            for name in pf.processes:
                entry = {"name": name, "version": pf.version, "file": str(path), "warnings": pf.warnings}
                if name in duplicates:
                    entry["error"] = str(duplicate_error(name, duplicates[name]))
                out.append(entry)
        return out

    def deploy(self, name: str) -> Deployment:
        """Parse ``name``'s file and embed its pin-checked scripts; raises ScriptRefused on a bad pin."""
        pf = self.find(name)
        parser = _make_parser()
        parser.add_bpmn_xml(pf.root, str(pf.path))
        spec = parser.get_spec(name)
        subprocess_specs = parser.get_subprocess_specs(name)
        bases = [pf.project_dir, pf.path.parent, PACKAGE_ROOT, INSTALLED_ROOT]
        scripts = []
        for s in [spec, *subprocess_specs.values()]:
            scripts.extend(self._embed_scripts(s, pf, bases))
        from .outcomes import declared_outcomes
        from .variables import declared_variables

        return Deployment(name=name, version=pf.version, path=pf.path, spec=spec,
                          subprocess_specs=subprocess_specs, scripts=scripts,
                          variables=declared_variables(pf.root, name), outcomes=declared_outcomes(pf.root),
                          timeouts=declared_timeouts(pf.root, name, [s.task for s in scripts]))

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


def declared_timeouts(root: Any, process_id: str, tasks: list[str]) -> dict[str, float]:
    """``{script task id: seconds}`` from ``procos:timeout`` on each task, else on the process element."""
    from .timeouts import parse_duration

    attr = f"{{{PROCOS_NS}}}timeout"
    procs = root.xpath(f"//bpmn:process[@id='{process_id}']", namespaces=NS)
    default = parse_duration(procs[0].get(attr), f"process {process_id} procos:timeout") if procs else None
    found: dict[str, float] = {}
    for node in root.xpath("//bpmn:scriptTask", namespaces=NS):
        if node.get("id") not in tasks:
            continue
        own = parse_duration(node.get(attr), f"script task {node.get('id')} procos:timeout")
        limit = own if own is not None else default
        if limit is not None:
            found[node.get("id")] = limit
    return found


def duplicate_error(name: str, paths: list[Path]) -> ProcessRefused:
    return ProcessRefused(
        f"process id {name!r} is defined in {len(paths)} files: {' and '.join(map(str, paths))}; "
        "a process id may be defined once (the shipped definitions cannot be replaced)",
        hint="give the process in the file you added its own id, or remove the copy")


def _make_parser():
    from SpiffWorkflow.spiff.parser.process import SpiffBpmnParser

    return SpiffBpmnParser()  # the file was validated by read_process_file
