"""The drift_check process: what a scheduler starts to watch a store against its last bundle."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from engine import api
from engine.records import EmbeddingRecord
from engine.repository import open_repository
from tests.test_processes_e2e import Procos


def test_drift_process_reports_exactly_the_changed_ids_and_emits_the_event(tmp_path: Path):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 120, 8)
    bundle = api.export_snapshot(uri, tmp_path / "snaps")["path"]
    procos = Procos(tmp_path / "home")

    clean = procos.start("drift_check", "scheduler", uri=uri, snapshot=bundle)
    assert clean["state"] == "completed" and clean["data"]["drift"] is False
    assert clean["data"]["checked"] == 120
    assert not [e for e in procos.events() if e["event"] == "vector_drift_detected"]

    repo = open_repository(uri)
    changed = repo.fetch(["rec-0000007"])[0]
    repo.upsert([EmbeddingRecord(changed.id, changed.vector + np.float32(0.5), changed.metadata,
                                 version=changed.version + 1)])
    repo.delete(["rec-0000042"])
    repo.close()

    found = procos.start("drift_check", "scheduler", code=4, uri=uri, snapshot=bundle)
    assert found["state"] == "completed" and found["data"]["drift"] is True and found["outcome"] == "drift"
    assert found["data"]["drifted"] == ["rec-0000007"] and found["data"]["missing"] == ["rec-0000042"]
    events = [e for e in procos.events() if e["event"] == "vector_drift_detected"]
    assert len(events) == 1 and events[0]["instance_id"] == found["instance_id"]
    assert events[0]["drifted"] == ["rec-0000007"]
