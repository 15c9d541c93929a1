"""Helpers for the sandbox tests: hostile copies of the fixture processes, forged stubs, marker payloads."""

from __future__ import annotations

import hashlib
from pathlib import Path

from workflow_support import copy_project, make_env

from engine.workflow.scripts import ResolvedScript

SPIFF_XMLNS = 'xmlns:spiffworkflow="http://spiffworkflow.org/bpmn/schema/1.0/core"'
PROCOS_XMLNS = 'xmlns:procos="http://procos.dev/schema/bpmn/1.0"'
SHIPPED = Path(__file__).resolve().parents[1] / "processes"


def hostile_project(tmp_path, monkeypatch, edit, name="fx_approval"):
    """fx_approval (or ``name``) in a private PROCOS_PROCESSES folder, its text passed through ``edit``."""
    processes = copy_project(tmp_path, [name])
    bpmn = processes / f"{name}.bpmn"
    bpmn.write_text(edit(bpmn.read_text().replace(PROCOS_XMLNS, f"{PROCOS_XMLNS} {SPIFF_XMLNS}")))
    env = make_env(tmp_path, monkeypatch, processes)
    env.prod()  # the approval path is the one these tests aim at
    return env, bpmn


def stub(code: str, task: str = "Apply", source: str = "scripts/test/count.py") -> str:
    """A well-formed, self-consistent versioned-script stub (its sha256 matches its code)."""
    return ResolvedScript(task=task, process_file="x.bpmn", source=source,
                          sha256=hashlib.sha256(code.encode()).hexdigest(), code=code).to_stub()


def touch(marker: Path) -> str:
    return f"def run(ctx):\n    open({str(marker)!r}, 'w').write('x')\n"
