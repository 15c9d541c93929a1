"""The shipped processes/*.bpmn: schema-valid, fully drawn, lint-clean, deployable, and pinned to their scripts."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from engine.workflow.loader import NS, PROCOS_NS, read_process_file

ROOT = Path(__file__).resolve().parents[1]
PROCESS_FILES = sorted((ROOT / "processes").glob("*.bpmn"))
EXPECTED = {"export_snapshot", "import_snapshot", "check_import", "validate_snapshot", "simulate_restore", "drift_check",
            "cutover", "replicate"}


def test_the_product_processes_are_shipped():
    assert {p.stem for p in PROCESS_FILES} == EXPECTED
    assert all(read_process_file(p).processes == [p.stem] for p in PROCESS_FILES)


@pytest.mark.parametrize("path", PROCESS_FILES, ids=lambda p: p.name)
def test_process_validates_and_draws_every_node_and_flow(path):
    pf = read_process_file(path)  # XSD validation; raises WorkflowError when it fails
    assert pf.warnings == []  # a BPMNShape for every flow node, a BPMNEdge for every sequence flow
    ids = pf.root.xpath("//bpmn:process//@id", namespaces=NS)
    assert not {"Start", "End"} & set(ids)  # these collide with SpiffWorkflow's own task names


@pytest.mark.parametrize("path", PROCESS_FILES, ids=lambda p: p.name)
def test_every_script_task_is_pinned_to_its_script_bytes(path):
    tasks = read_process_file(path).root.xpath("//bpmn:scriptTask", namespaces=NS)
    assert tasks
    for task in tasks:
        source, pin = task.get(f"{{{PROCOS_NS}}}script"), task.get(f"{{{PROCOS_NS}}}sha256")
        assert source and source.startswith("scripts/v"), f"{task.get('id')} names no versioned script"
        assert task.find("{http://www.omg.org/spec/BPMN/20100524/MODEL}script") is None  # no inline code
        actual = hashlib.sha256((ROOT / source).read_bytes()).hexdigest()
        assert pin == actual, f"{path.name} {task.get('id')}: {source} is pinned to {pin}, its bytes hash to " \
                              f"{actual}; run python tools/build_processes.py"


def test_every_gateway_flow_has_a_condition_or_is_the_default():
    for path in PROCESS_FILES:
        root = read_process_file(path).root
        for gw in root.xpath("//bpmn:exclusiveGateway", namespaces=NS):
            outgoing = root.xpath(f"//bpmn:sequenceFlow[@sourceRef='{gw.get('id')}']", namespaces=NS)
            if len(outgoing) < 2:
                continue
            for flow in outgoing:
                conditioned = flow.find("{http://www.omg.org/spec/BPMN/20100524/MODEL}conditionExpression")
                assert conditioned is not None or gw.get("default") == flow.get("id"), \
                    f"{path.name}: flow {flow.get('id')} out of {gw.get('id')} has no condition and is not the default"


def test_processes_deploy_with_their_scripts(tmp_path):
    from engine.workflow.loader import Catalog
    from engine.workflow.settings import Settings

    catalog = Catalog(Settings(home=tmp_path, process_dirs=(ROOT / "processes",)))
    for name in EXPECTED:
        deployment = catalog.deploy(name)  # parses with Spiff and pin-checks every script
        assert deployment.scripts


def test_generator_output_matches_the_files_on_disk():
    done = subprocess.run([sys.executable, str(ROOT / "tools" / "build_processes.py"), "--check"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.skipif(shutil.which("npx") is None or not (ROOT / "node_modules" / "bpmnlint").is_dir(),
                    reason="bpmnlint not installed (npm install --no-save bpmnlint@11)")
def test_bpmnlint_recommended_rules_pass():
    done = subprocess.run(["npx", "--no-install", "bpmnlint", *map(str, PROCESS_FILES)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
