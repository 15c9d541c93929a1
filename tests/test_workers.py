"""Continuity at scale: two schedulers and three workers against one PostgreSQL (the embedded server).

Every due run starts one instance; a worker SIGKILLed in the middle of an export is resumed by another
worker from its last saved step (no script step completes twice, the re-run step's event keeps its id);
a hung script times out and its process's error path runs; SIGTERM stops a worker gracefully.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import time

import pytest
from queue_support import Daemons, new_database, wait_for

from engine.snapshot import verify_bundle

LEASE = "3"  # seconds without a heartbeat before a worker is presumed dead


@pytest.fixture
def cluster(tmp_path, monkeypatch, pg_dsn):
    from workflow_support import FIXTURES, seed_users

    dsn, drop = new_database(pg_dsn)
    home = tmp_path / "home"
    home.mkdir()
    env = {"PROCOS_HOME": str(home), "PROCOS_STATE_DSN": dsn, "PROCOS_PROCESSES": str(FIXTURES / "processes"),
           "PROCOS_WORKER_LEASE_SECONDS": LEASE, "PROCOS_ENV": "dev"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("PROCOS_TOKEN", raising=False)
    tokens = seed_users({"scheduler": ["Owner"], "alice": ["Owner"]})
    daemons = Daemons({**os.environ, **env}, tmp_path / "logs")
    try:
        yield daemons, tokens, home
    finally:
        daemons.stop_all()
        drop()


def service():
    from engine.workflow import WorkflowService

    return WorkflowService()


def ok_scripts(history: list[dict]) -> collections.Counter:
    return collections.Counter(h["task"] for h in history if h["kind"] == "script" and h["outcome"] == "ok")


def test_two_schedulers_three_workers_one_run_per_occurrence_and_a_killed_worker_is_resumed(cluster, tmp_path):
    daemons, tokens, home = cluster
    from engine import api
    from engine.api import processes

    source = f"faiss:{tmp_path / 'source'}"
    api.seed_store(source, 300, 16)
    ticks = tmp_path / "ticks.txt"
    (home / "schedules.yaml").write_text(json.dumps({"schedules": [
        {"name": "tick", "process": "fx_linear", "every": "1s",
         "variables": {"counter": str(ticks), "gate": str(tmp_path / "no-gate")}}]}))
    workers = [daemons.start("worker", "--concurrency", "2") for _ in range(3)]
    svc = service()
    wait_for(lambda: len(svc.store.list_workers()) == 3, what="three registered workers")
    schedulers = [daemons.start("scheduler", "run", token=tokens["scheduler"]) for _ in range(2)]

    # an export held by one worker at its gate step, then that worker is SIGKILLed
    gate, hang_gate = tmp_path / "gate", tmp_path / "hang-gate"
    gate.touch()
    hang_gate.touch()
    counter = tmp_path / "export-counter.txt"
    export = svc.start_process("fx_gated_export", {"source": source, "out_dir": str(tmp_path / "out"),
                                                   "counter": str(counter), "gate": str(gate)},
                               user="alice", detach=True)
    assert export["state"] == "queued"
    iid = export["instance_id"]
    wait_for(lambda: "Gate:start" in (counter.read_text() if counter.exists() else ""), what="the gate step")
    row = svc.store.get_instance(iid)
    [victim] = [w for w in workers if w.pid == row.runner_pid]
    assert api.store_stats(source)["paused"] is True  # frozen by the export
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=10)
    gate.unlink()

    # a hung step on a worker: it times out and its error path runs
    hung = svc.start_process("fx_timeout", {"counter": str(tmp_path / "hang-counter.txt"), "gate": str(hang_gate)},
                             user="alice", detach=True)

    finished = ("completed", "error", "cancelled")
    wait_for(lambda: svc.show_instance(iid)["state"] in finished, timeout=60, what="the resumed export")
    wait_for(lambda: svc.show_instance(hung["instance_id"])["state"] in finished, timeout=30, what="the hung step")
    time.sleep(2)  # a few more scheduler ticks while a worker is gone
    outputs = [daemons.stop(s) for s in schedulers]

    # every due run started exactly one instance, whichever scheduler won it
    runs = svc.store.schedule_runs("tick")
    assert len(runs) >= 4
    started_by_schedulers = sum(int(line.split(": ")[1].split(" started")[0]) for out in outputs
                                for line in out.splitlines() if " stopped: " in line)
    assert started_by_schedulers == len(runs)
    assert all(r["state"] == "started" and r["instance_id"] for r in runs)
    ticked = [i for i in svc.list_instances() if i["process"] == "fx_linear"]
    assert sorted(i["instance_id"] for i in ticked) == sorted(r["instance_id"] for r in runs)
    assert all(i["started_by"] == "scheduler" for i in ticked)
    wait_for(lambda: all(svc.show_instance(i["instance_id"])["state"] == "completed" for i in ticked), timeout=60,
             what=f"every scheduled run to complete: {collections.Counter(i['state'] for i in svc.list_instances())}")
    histories = [svc.show_instance(i["instance_id"])["history"] for i in ticked]
    assert all(ok_scripts(h) == {"StepA": 1, "StepB": 1, "StepC": 1, "StepD": 1} for h in histories)
    resumed_runs = sum(1 for h in histories for e in h if e["kind"] == "resumed")  # held by the killed worker
    lines = ticks.read_text().split()
    for step in ("StepA", "StepB", "StepC:end", "StepD"):  # a step runs again only when its worker died in it
        assert len(ticked) <= lines.count(step) <= len(ticked) + resumed_runs, (step, lines.count(step))

    # the killed worker's export was resumed by another worker; completed steps did not run again
    shown = svc.show_instance(iid)
    assert shown["state"] == "completed" and shown["outcome"] == "succeeded"
    [resumed] = [h for h in shown["history"] if h["kind"] == "resumed"]
    assert resumed["previous_runner"].endswith(f":{victim.pid}") and resumed["worker"] != resumed["previous_runner"]
    assert set(ok_scripts(shown["history"]).values()) == {1}  # no script step completed twice
    assert counter.read_text().split() == ["Gate:start", "Gate:start", "Gate:end"]  # the killed step ran again
    assert verify_bundle(shown["data"]["bundle"]).ok
    assert api.store_stats(source)["paused"] is False
    gate_events = [e for e in svc.store.events(iid) if e["event"] == "snapshot_exported"]
    assert len(gate_events) == 2 and len({e["event_id"] for e in gate_events}) == 1  # re-emitted, same id

    # the hung step timed out; its error path ran
    hung_shown = svc.show_instance(hung["instance_id"])
    assert hung_shown["state"] == "error" and "did not finish within 1 s" in hung_shown["error"]
    assert (tmp_path / "hang-counter.txt").read_text().split() == ["Freeze", "Hang:start", "Cleanup"]

    # worker status, then a graceful stop
    status = processes.worker_status()
    alive = {w["pid"] for w in status if w["alive"]}
    assert alive == {w.pid for w in workers if w is not victim}
    for w in workers:
        if w is not victim:
            assert "stopped after" in daemons.stop(w)
    assert {s["pid"] for s in processes.worker_status()} <= {victim.pid}  # stopped workers unregistered
    svc.close()
