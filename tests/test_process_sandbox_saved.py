"""Forged saved instances: a script runs only if its pin was recorded when the instance started.

Someone who can rewrite an instance's saved state (but not its ``started`` history entry) swaps the
embedded script stubs, conditions or pre/post scripts; nothing of it may run, and each refusal is audited.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sandbox_support import stub, touch
from workflow_support import make_env

from engine.errors import ScriptRefused, WorkflowError
from engine.workflow.scripts import STUB_MARKER, ResolvedScript


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


def forge(svc, instance_id: str, change) -> None:
    """Rewrite the saved state of ``instance_id`` (as someone with the state DB would) through ``change``."""
    row = svc.store.get_instance(instance_id)
    state = json.loads(row.state_json)
    change(state)
    row.state_json = json.dumps(state)
    tasks = [t for t in svc.store.list_tasks() if t.instance_id == instance_id]
    svc.store.update_instance(row, row.revision, tasks, [])


def waiting_approval(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    env.prod()
    svc = env.service()
    started = svc.start_process("fx_approval", {"counter": str(env.counter)}, user="carol")
    assert started["state"] == "waiting" and env.counts() == ["Freeze"]
    return env, svc, started["instance_id"]


def _apply_script(state: dict, text: str) -> None:
    state["spec"]["task_specs"]["Apply"]["script"] = text


def _freeze_stub_on_apply(state: dict) -> None:
    freeze = ResolvedScript.from_stub(state["spec"]["task_specs"]["Freeze"]["script"])
    moved = ResolvedScript(**{**freeze.__dict__, "task": "Apply"})  # a pinned script, on the wrong task
    _apply_script(state, moved.to_stub())


def _pinned_sha_other_code(state: dict, marker: Path) -> None:
    real = ResolvedScript.from_stub(state["spec"]["task_specs"]["Apply"]["script"])
    _apply_script(state, ResolvedScript(**{**real.__dict__, "code": touch(marker)}).to_stub())


FORGERIES = {
    "self-consistent stub": lambda s, m: _apply_script(s, stub(touch(m))),
    "pinned sha, other code": _pinned_sha_other_code,
    "another task's pinned stub": lambda s, m: _freeze_stub_on_apply(s),
    "inline code": lambda s, m: _apply_script(s, f"open({str(m)!r}, 'w')"),
    "malformed stub": lambda s, m: _apply_script(s, STUB_MARKER + "\n{}"),
}


@pytest.mark.parametrize("kind", list(FORGERIES))
def test_a_script_forged_into_a_saved_instance_is_refused_and_audited(tmp_path, monkeypatch, marker, kind):
    env, svc, iid = waiting_approval(tmp_path, monkeypatch)
    forge(svc, iid, lambda state: FORGERIES[kind](state, marker))
    [task] = svc.list_tasks("bob")
    result = svc.complete_task(task["task_id"], "bob", approve=True)
    assert result["state"] == "error"
    assert not marker.exists() and env.counts() == ["Freeze"]  # neither the forged nor any code ran
    shown = svc.show_instance(iid)
    [refused] = [h for h in shown["history"] if h["kind"] == "refused"]
    assert refused["task"] == "Apply" and refused["action"] == "run_script" and "refused" in refused["why"]
    assert "Apply" in shown["error"] and not [h for h in shown["history"]
                                              if h["kind"] == "script_started" and h["task"] == "Apply"]
    assert [e["event"] for e in svc.store.events(iid)] == ["process_failed", "instance_finished"]


def test_a_postscript_forged_onto_a_user_task_is_refused(tmp_path, monkeypatch, marker):
    env, svc, iid = waiting_approval(tmp_path, monkeypatch)
    forge(svc, iid, lambda s: s["spec"]["task_specs"]["Approve"].update(postscript=stub(touch(marker), "Approve")))
    [task] = svc.list_tasks("bob")
    with pytest.raises(ScriptRefused, match="is not a script task"):
        svc.complete_task(task["task_id"], "bob", approve=True)
    assert not marker.exists() and env.counts() == ["Freeze"]
    assert [h["task"] for h in svc.show_instance(iid)["history"] if h["kind"] == "refused"] == ["Approve"]


def test_a_forged_condition_in_a_saved_instance_never_runs(tmp_path, monkeypatch, marker):
    env, svc, iid = waiting_approval(tmp_path, monkeypatch)
    hostile = f'__import__("os").system("touch {marker}") == 0'
    forge(svc, iid, lambda s: s["spec"]["task_specs"]["Approved"]["cond_task_specs"][0].update(condition=hostile))
    [task] = svc.list_tasks("bob")
    result = svc.complete_task(task["task_id"], "bob", approve=True)
    assert result["state"] == "error" and not marker.exists() and env.counts() == ["Freeze"]
    assert "a call is not allowed" in svc.show_instance(iid)["error"]


def test_a_saved_state_of_an_old_serializer_version_is_refused_before_spiff_upgrades_it(tmp_path, monkeypatch):
    env, svc, iid = waiting_approval(tmp_path, monkeypatch)
    forge(svc, iid, lambda s: s.update(serializer_version="1.1"))  # Spiff's 1.1 upgrade eval()s timer text
    [task] = svc.list_tasks("bob")
    with pytest.raises(WorkflowError, match="serializer version '1.1'"):
        svc.complete_task(task["task_id"], "bob", approve=True)
    with pytest.raises(WorkflowError, match="serializer version"):
        svc.show_instance(iid)


def test_the_pins_come_from_the_started_entry(tmp_path, monkeypatch):
    env, svc, iid = waiting_approval(tmp_path, monkeypatch)
    [started] = [h for h in svc.show_instance(iid)["history"] if h["kind"] == "started"]
    assert {p["task"] for p in started["scripts"]} == {"Freeze", "AutoApprove", "Apply", "Reject"}
    [task] = svc.list_tasks("bob")
    assert svc.complete_task(task["task_id"], "bob", approve=True)["state"] == "completed"
    assert env.counts() == ["Freeze", "Apply"]
