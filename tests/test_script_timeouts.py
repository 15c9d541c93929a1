"""Script timeouts: a step that hangs past procos:timeout fails with a clear error and its error path runs."""

from __future__ import annotations

import time

import pytest
from workflow_support import FIXTURES, make_env

from engine.errors import WorkflowError
from engine.workflow.timeouts import parse_duration, run_with_timeout


def test_a_hung_step_times_out_and_the_error_path_clears_the_freeze_flag(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    gate = tmp_path / "gate"
    gate.touch()  # the Hang step waits while the gate exists: it would hang for 60 s
    started = time.monotonic()
    result = env.service().start_process("fx_timeout", {"counter": str(env.counter), "gate": str(gate)},
                                         user="alice")
    elapsed = time.monotonic() - started
    assert result["state"] == "error" and result["outcome"] == "error"  # to be fixed and retried, like any failure
    assert elapsed < 10, elapsed  # the 1 s limit of the process, not the script's 60 s
    assert env.counts() == ["Freeze", "Hang:start", "Cleanup"]  # stopped before its end; the error path ran
    shown = env.service().show_instance(result["instance_id"])
    assert "did not finish within 1 s" in shown["error"]
    history = shown["history"]
    assert [h["task"] for h in history if h["kind"] == "step" and h["task"] in ("Cleanup", "Event_failed")] == \
        ["Cleanup", "Event_failed"]
    [late] = [h for h in history if h["kind"] == "script" and h["task"] == "Hang"]
    assert late["outcome"] == "failed"
    assert "did not finish within 1 s (procos:timeout)" in late["error"] and "scripts/test/slow.py" in late["error"]
    started_entry = next(h for h in history if h["kind"] == "started")
    limits = {p["task"]: p.get("timeout") for p in started_entry["scripts"]}
    assert limits == {"Freeze": 1.0, "Hang": 1.0, "Finish": 1.0, "Cleanup": 30.0}  # task attribute beats process


def test_a_step_within_its_limit_is_not_disturbed(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    result = env.service().start_process("fx_timeout", {"counter": str(env.counter), "gate": str(tmp_path / "none")},
                                         user="alice")
    assert result["outcome"] == "succeeded" and env.counts() == ["Freeze", "Hang:start", "Hang:end", "Finish"]


def test_run_with_timeout_returns_values_and_reraises_errors():
    assert run_with_timeout(lambda: 42, 5, str) == 42
    with pytest.raises(ZeroDivisionError):
        run_with_timeout(lambda: 1 / 0, 5, str)


def test_durations_parse_and_bad_ones_are_refused():
    assert [parse_duration(x) for x in ("90", "30s", "15m", "2h", "1d", None)] == [90, 30, 900, 7200, 86400, None]
    for bad in ("soon", "-5", "0s", "5 weeks"):
        with pytest.raises(WorkflowError):
            parse_duration(bad, "procos:timeout")


def test_the_fixture_declares_its_limits_on_the_process_and_the_task():
    text = (FIXTURES / "processes" / "fx_timeout.bpmn").read_text()
    assert 'procos:timeout="1s"' in text and 'procos:timeout="30s"' in text


def test_the_shipped_example_schedules_parse():
    from pathlib import Path

    from engine.workflow.schedules import read_schedules

    entries = read_schedules(Path(__file__).resolve().parents[1] / "docs" / "schedules.example.yaml")
    assert {e.process for e in entries} == {"export_snapshot", "replicate", "drift_check", "simulate_restore"}
    assert [e.cron or e.every for e in entries] == ["0 2 * * *", "1h", "15m", "0 3 1 1,4,7,10 *"]
