"""A runner killed mid-process (SIGKILL) leaves an interrupted instance that retry resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from workflow_support import make_env

RUNNER = """
import sys
from engine.workflow import WorkflowService
WorkflowService().start_process("fx_linear", {"counter": sys.argv[1], "gate": sys.argv[2]}, user="alice")
"""


def wait_for(predicate, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("timed out")


def test_killed_runner_resumes_without_repeating_completed_script_tasks(tmp_path, monkeypatch):
    env = make_env(tmp_path, monkeypatch)
    gate = tmp_path / "gate"
    gate.touch()  # StepC blocks while the gate exists
    proc = subprocess.Popen([sys.executable, "-c", RUNNER, str(env.counter), str(gate)], env=dict(os.environ))
    try:
        wait_for(lambda: "StepC:start" in env.counts())
        svc = env.service()
        [row] = svc.list_instances()
        assert row["state"] == "running"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    [row] = svc.list_instances()
    assert row["state"] == "interrupted"
    gate.unlink()
    result = svc.retry_instance(row["instance_id"], user="bob")
    assert result["state"] == "completed"
    counts = env.counts()
    assert counts.count("StepA") == 1 and counts.count("StepB") == 1  # completed script tasks never rerun
    assert counts.count("StepC:start") == 2 and counts.count("StepC:end") == 1  # the killed one reran
    assert counts[-1] == "StepD"
    history = svc.show_instance(row["instance_id"])["history"]
    assert [h["previous_state"] for h in history if h["kind"] == "retry"] == ["interrupted"]
