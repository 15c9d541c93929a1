"""Every BPMN file we ship or test with is schema-valid, fully drawn, and passes bpmnlint."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from workflow_support import FIXTURES

from engine.workflow.loader import read_process_file

ROOT = Path(__file__).resolve().parents[1]
BPMN_FILES = sorted([*(ROOT / "processes").glob("*.bpmn"), *(FIXTURES / "processes").glob("*.bpmn")])


@pytest.mark.parametrize("path", BPMN_FILES, ids=lambda p: p.name)
def test_bpmn_file_validates_and_draws_every_node_and_flow(path):
    pf = read_process_file(path)  # raises when the XSD rejects it
    assert pf.processes, f"{path} has no executable process"
    assert pf.warnings == []  # a BPMNShape per flow node, a BPMNEdge per sequence flow


def test_missing_diagram_elements_are_reported(tmp_path):
    src = (FIXTURES / "processes" / "fx_linear.bpmn").read_text()
    start = src.index('      <bpmndi:BPMNEdge id="Flow_0_di"')
    end = src.index("</bpmndi:BPMNEdge>", start) + len("</bpmndi:BPMNEdge>")
    bad = tmp_path / "bad.bpmn"
    bad.write_text(src[:start] + src[end:])
    assert read_process_file(bad).warnings == ["sequenceFlow Flow_0 has no BPMNEdge in the diagram"]


def test_schema_invalid_file_is_refused(tmp_path):
    from engine.errors import WorkflowError

    bad = tmp_path / "bad.bpmn"
    bad.write_text((FIXTURES / "processes" / "fx_linear.bpmn").read_text()
                   .replace("<bpmn:incoming>Flow_0</bpmn:incoming>", "<bpmn:bogus />", 1))
    with pytest.raises(WorkflowError, match="BPMN 2.0 XSD"):
        read_process_file(bad)


@pytest.mark.skipif(shutil.which("npx") is None or not (ROOT / "node_modules" / "bpmnlint").is_dir(),
                    reason="bpmnlint not installed (npm install --no-save bpmnlint@11)")
def test_bpmnlint_recommended_rules_pass():
    done = subprocess.run(["npx", "--no-install", "bpmnlint", *map(str, BPMN_FILES)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
