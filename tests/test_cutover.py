"""The cutover process: a writer keeps writing to the source during the whole cutover; the target ends with
every write acknowledged before the freeze, the write pause is reported, validation passes, the endpoint
file is switched, and the source stays frozen (the target takes writes)."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pytest
from workflow_support import make_env

from engine import api
from engine.errors import IngestionPaused
from engine.records import EmbeddingRecord


@pytest.fixture
def pg_uris(pg_server):
    if pg_server.datadir is None:
        pytest.skip("needs the embedded server")
    return lambda: f"postgresql+embedded:{pg_server.datadir}?table=t_{uuid.uuid4().hex[:10]}"


def test_cutover_under_a_steady_writer_keeps_every_acknowledged_write(tmp_path, monkeypatch, pg_uris):
    from engine.repository import open_repository

    env = make_env(tmp_path, monkeypatch)
    source, target = pg_uris(), pg_uris()
    api.seed_store(source, 1500, 16)
    endpoint_file = tmp_path / "app.env"
    endpoint_file.write_text("APP_NAME=kb\nVECTOR_ENDPOINT=old\nLOG_LEVEL=info\n")
    acked, refused = [], []
    stop = threading.Event()

    def writer() -> None:
        repo = open_repository(source)
        rng = np.random.default_rng(7)
        n = 0
        try:
            while not stop.is_set():
                rid = f"live{n:06d}"
                try:
                    repo.upsert([EmbeddingRecord(id=rid, vector=rng.random(16, dtype=np.float32) + 0.01,
                                                 metadata={"live": True})])
                except IngestionPaused:
                    refused.append(time.time())
                    time.sleep(0.05)
                    continue
                acked.append(rid)
                n += 1
                time.sleep(0.01)
        finally:
            repo.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(0.5)
        result = env.service().start_process("cutover", {
            "source": source, "target": target, "endpoint_file": str(endpoint_file), "monitor_seconds": 2,
            "work_dir": str(tmp_path / "work"), "queries": 10}, user="alice")
        time.sleep(0.3)
    finally:
        stop.set()
        thread.join()
    data = result["data"]
    assert result["state"] == "completed" and result["outcome"] == "succeeded", env.service().show_instance(
        result["instance_id"])["error"]
    assert data["passed"] is True and data["rounds"] and data["monitor"]["checks"] >= 2
    assert refused, "the writer kept writing until the freeze refused it"
    assert 0 < data["write_pause_seconds"] < data["total_seconds"]
    with open_repository(target) as repo:
        have = {r.id for r in repo.fetch(acked)}
    assert acked and set(acked) == have  # every acknowledged write reached the target
    assert api.store_stats(source)["paused"] is True  # the old store stays frozen
    assert api.store_stats(target)["paused"] is False
    assert api.store_stats(target)["count"] == 1500 + len(acked)
    lines = endpoint_file.read_text().splitlines()
    assert lines == ["APP_NAME=kb", "LOG_LEVEL=info", f"VECTOR_ENDPOINT={target}"]
    report = __import__("json").loads(open(data["report"]).read())
    assert report["write_pause_seconds"] == data["write_pause_seconds"] and report["passed"] is True
    events = [e for e in env.service().store.events(result["instance_id"]) if e["event"] == "cutover_completed"]
    assert len(events) == 1 and events[0]["write_pause_seconds"] == data["write_pause_seconds"]


def test_cutover_waits_for_an_approver_in_prod(tmp_path, monkeypatch, pg_uris):
    env = make_env(tmp_path, monkeypatch)
    env.prod()
    source = pg_uris()
    api.seed_store(source, 50, 8)
    result = env.service().start_process("cutover", {"source": source, "target": pg_uris(),
                                                     "endpoint_file": str(tmp_path / "e.env")}, user="alice")
    assert result["state"] == "waiting"
    [task] = env.service().list_tasks("bob")
    assert task["process"] == "cutover" and api.store_stats(source)["paused"] is False  # nothing frozen yet
