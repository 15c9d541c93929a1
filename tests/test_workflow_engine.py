"""The engine against real SpiffWorkflow: versioned scripts, history, events, failures, retry."""

from __future__ import annotations

import json
import re

import pytest
from workflow_support import copy_project, make_env

from engine.errors import ScriptRefused, WorkflowError


@pytest.fixture
def env(tmp_path, monkeypatch):
    return make_env(tmp_path, monkeypatch)


def test_linear_process_runs_each_script_once_and_records_provenance(env):
    svc = env.service()
    result = svc.start_process("fx_linear", {"counter": str(env.counter), "bundle": "b1"}, user="alice")
    assert result["state"] == "completed"
    assert env.counts() == ["StepA", "StepB", "StepC:start", "StepC:end", "StepD"]
    shown = svc.show_instance(result["instance_id"])
    assert set(shown) >= {"instance_id", "state", "data", "history"}
    scripts = [h for h in shown["history"] if h["kind"] == "script"]
    assert [s["task"] for s in scripts] == ["StepA", "StepB", "StepC", "StepD"]
    assert all(re.fullmatch(r"[0-9a-f]{64}", s["sha256"]) and s["script"].startswith("scripts/test/")
               and s["outcome"] == "ok" for s in scripts)
    steps = [h["task"] for h in shown["history"] if h["kind"] == "step"]
    assert steps == ["Event_start", "StepA", "StepB", "StepC", "StepD", "Event_done"]
    line = json.loads((env.home / "events.jsonl").read_text().splitlines()[0])
    assert line["event"] == "snapshot_exported" and line["instance_id"] == result["instance_id"]
    assert line["bundle"] == "b1" and line["time"]
    assert svc.store.events(result["instance_id"])[0]["event"] == "snapshot_exported"
    listed = svc.list_instances()
    assert listed == [{"instance_id": result["instance_id"], "process": "fx_linear", "state": "completed",
                       "outcome": "succeeded", "started_by": "alice", "started_at": listed[0]["started_at"],
                       "updated_at": listed[0]["updated_at"]}]


def test_script_failure_runs_error_path_and_retry_resumes(env, tmp_path):
    flag = tmp_path / "fail.flag"
    flag.touch()
    svc = env.service()
    result = svc.start_process("fx_failure", {"counter": str(env.counter), "fail_flag": str(flag)}, user="alice")
    assert result["state"] == "error"
    assert env.counts() == ["Freeze", "Work", "Cleanup"]  # the BPMN error path cleared the freeze flag
    shown = svc.show_instance(result["instance_id"])
    failed = [h for h in shown["history"] if h["kind"] == "script" and h["outcome"] == "failed"]
    assert len(failed) == 1 and failed[0]["task"] == "Work" and failed[0]["script"] == "scripts/test/flaky.py"
    assert failed[0]["line"] > 0 and "raise RuntimeError" in failed[0]["error_line"]
    assert failed[0]["process_file"].endswith("fx_failure.bpmn")
    assert "injected failure" in shown["error"] and "fx_failure.bpmn" in shown["error"]
    events = svc.store.events(result["instance_id"])
    assert [e["event"] for e in events] == ["process_failed", "instance_finished"]
    assert events[0]["outcome"] == events[1]["outcome"] == "error" and events[1]["state"] == "error"

    flag.unlink()
    again = svc.retry_instance(result["instance_id"], user="bob")
    assert again["state"] == "completed"
    assert env.counts() == ["Freeze", "Work", "Cleanup", "Work", "Finish"]  # Freeze did not run twice
    kinds = [h["kind"] for h in svc.show_instance(result["instance_id"])["history"]]
    assert "retry" in kinds and kinds[-2:] == ["state", "event"]  # the outcome, then instance_finished


def test_failure_without_error_boundary_halts_in_error_and_retry_reruns_the_task(env):
    svc = env.service()
    result = svc.start_process("fx_bad_data", {}, user="alice")
    assert result["state"] == "error"
    shown = svc.show_instance(result["instance_id"])
    assert "not JSON" in shown["error"] and "data['ids'] (set)" in shown["error"]
    with pytest.raises(WorkflowError, match="only error or interrupted"):
        svc.retry_instance(svc.start_process("fx_linear", {"counter": str(env.counter)})["instance_id"])
    assert svc.retry_instance(result["instance_id"])["state"] == "error"  # still bad, still refused


def test_script_whose_bytes_do_not_match_its_pin_is_refused_and_never_runs(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, ["fx_linear"])
    env = make_env(tmp_path, monkeypatch, processes)
    script = processes.parent / "scripts" / "test" / "count.py"
    script.write_text(script.read_text() + "\n# tampered\n")
    svc = env.service()
    with pytest.raises(ScriptRefused, match="pinned to"):
        svc.start_process("fx_linear", {"counter": str(env.counter)}, user="alice")
    assert not env.counter.exists()
    assert svc.list_instances() == []


def test_unpinned_local_script_is_refused(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, ["fx_linear"])
    bpmn = processes / "fx_linear.bpmn"
    bpmn.write_text(re.sub(r' procos:sha256="[0-9a-f]+"', "", bpmn.read_text(), count=1))
    env = make_env(tmp_path, monkeypatch, processes)
    with pytest.raises(ScriptRefused, match="no procos:sha256 pin"):
        env.service().start_process("fx_linear", {"counter": str(env.counter)})
    assert not env.counter.exists()


def test_literal_script_src_form_is_rewritten_and_runs(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, ["fx_linear"])
    bpmn = processes / "fx_linear.bpmn"
    text = bpmn.read_text()
    m = re.search(r'(<bpmn:scriptTask id="StepA" name="Step A") procos:script="([^"]+)" procos:sha256="([^"]+)">', text)
    text = text.replace(m.group(0), m.group(1) + ">")
    text = text.replace("<bpmn:outgoing>Flow_1</bpmn:outgoing>\n    </bpmn:scriptTask>",
                        f'<bpmn:outgoing>Flow_1</bpmn:outgoing>\n      <bpmn:script src="{m.group(2)}" '
                        f'sha256="{m.group(3)}" />\n    </bpmn:scriptTask>', 1)
    bpmn.write_text(text)
    env = make_env(tmp_path, monkeypatch, processes)
    result = env.service().start_process("fx_linear", {"counter": str(env.counter)})
    assert result["state"] == "completed" and env.counts()[0] == "StepA"


def test_running_instance_keeps_the_definition_and_script_it_started_with(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, ["fx_approval"])
    env = make_env(tmp_path, monkeypatch, processes)
    env.prod()
    svc = env.service()
    old = svc.start_process("fx_approval", {"counter": str(env.counter)}, user="carol")
    assert old["state"] == "waiting"
    # v2 of the Apply script: writes a different line; the BPMN is re-pinned, so its version changes
    script = processes.parent / "scripts" / "test" / "count.py"
    old_pin = __import__("hashlib").sha256(script.read_bytes()).hexdigest()
    script.write_text(script.read_text().replace('ctx.task_id + "\\n"', '"v2:" + ctx.task_id + "\\n"'))
    new_pin = __import__("hashlib").sha256(script.read_bytes()).hexdigest()
    bpmn = processes / "fx_approval.bpmn"
    bpmn.write_text(bpmn.read_text().replace(old_pin, new_pin))
    [task] = svc.list_tasks("bob")
    assert svc.complete_task(task["task_id"], "bob", approve=True)["state"] == "completed"
    assert env.counts() == ["Freeze", "Apply"]  # the v1 code ran for the v1 instance
    env.monkeypatch.setenv("PROCOS_ENV", "dev")
    svc = env.service()
    new = svc.start_process("fx_approval", {"counter": str(env.counter)}, user="carol")
    assert new["state"] == "completed" and env.counts()[-1] == "v2:Apply"
    versions = {i["instance_id"]: svc.show_instance(i["instance_id"])["version"] for i in svc.list_instances()}
    assert versions[old["instance_id"]] != versions[new["instance_id"]]


def test_camunda_style_condition_is_refused_at_deploy(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, ["fx_approval"])
    bpmn = processes / "fx_approval.bpmn"
    bpmn.write_text(bpmn.read_text().replace('environment == "prod"', '${environment == "prod"}'))
    env = make_env(tmp_path, monkeypatch, processes)
    with pytest.raises(WorkflowError, match="not a Python expression"):
        env.service().start_process("fx_approval", {"counter": str(env.counter)})


def test_unknown_process_and_non_json_variables_are_clear_errors(env):
    svc = env.service()
    with pytest.raises(WorkflowError, match="no process named 'nope'"):
        svc.start_process("nope")
    with pytest.raises(WorkflowError, match="JSON values"):
        svc.start_process("fx_linear", {"x": {1, 2}})
