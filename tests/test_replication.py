"""Continuous protection: replicate ships deltas (nothing when unchanged, fulls on their cadence), restore
--at gives exactly the source's state at three times, and RPO is measured with a writer and a killed source."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from engine import api
from engine.errors import InvalidInput
from engine.records import EmbeddingRecord

ROOT = Path(__file__).resolve().parents[1]
DIM = 8


def records(prefix: str, n: int, version: int = 1, seed: int = 0) -> list[EmbeddingRecord]:
    rng = np.random.default_rng(seed)
    return [EmbeddingRecord(id=f"{prefix}{i:05d}", vector=rng.random(DIM, dtype=np.float32) + 0.01,
                            metadata={"batch": prefix}, version=version) for i in range(n)]


def write(uri: str, recs: list[EmbeddingRecord]) -> None:
    from engine.repository import open_repository

    repo = open_repository(uri, create=True, dimensions=DIM)
    try:
        repo.upsert(recs)
    finally:
        repo.close()


def delete(uri: str, ids: list[str]) -> None:
    from engine.repository import open_repository

    repo = open_repository(uri)
    try:
        repo.delete(ids)
    finally:
        repo.close()


def state(uri: str) -> dict[str, tuple[int, str]]:
    """``{id: (version, vector bytes hash)}`` of every record of a store."""
    import hashlib

    from engine.repository import open_repository

    repo = open_repository(uri)
    try:
        return {r.id: (r.version, hashlib.sha256(np.asarray(r.vector, np.float32).tobytes()).hexdigest())
                for r in repo.iter_records()}
    finally:
        repo.close()


def test_replicate_ships_a_full_then_deltas_and_nothing_when_unchanged(tmp_path):
    source, replica = f"faiss:{tmp_path / 'src'}", tmp_path / "replica"
    write(source, records("a", 50))
    first = api.replicate_once(source, replica)
    assert first["shipped"]["kind"] == "full" and first["lag"] == 0
    assert api.replicate_once(source, replica)["shipped"] is None  # nothing changed: nothing shipped
    write(source, records("b", 5))
    second = api.replicate_once(source, replica)
    assert second["shipped"]["kind"] == "delta" and second["shipped"]["upserts"] == 5
    catalog = api.snapshot_catalog(replica)
    assert catalog["ok"] and [b["kind"] for b in catalog["bundles"]] == ["full", "delta"]
    assert catalog["bundles"][1]["chain"] == [b["snapshot_id"] for b in catalog["bundles"]]
    time.sleep(1.1)
    write(source, records("c", 3))
    third = api.replicate_once(source, replica, full_every="1s")  # the full cadence is due: a new full bundle
    assert third["shipped"]["kind"] == "full" and third["shipped"]["record_count"] == 58


def test_restore_at_three_times_gives_exactly_the_state_exported_at_those_times(tmp_path):
    source, replica = f"faiss:{tmp_path / 'src'}", tmp_path / "replica"
    write(source, records("a", 40))
    api.replicate_once(source, replica)
    marks = []
    changes = [lambda: write(source, records("b", 10, seed=1)),
               lambda: (write(source, records("a", 5, version=2, seed=2)), delete(source, ["a00030", "b00001"])),
               lambda: write(source, records("c", 7, seed=3)),
               lambda: delete(source, ["a00000"])]
    for change in changes:
        change()
        api.replicate_once(source, replica)
        time.sleep(0.01)
        at = datetime.now(UTC)
        exported = api.export_snapshot(source, tmp_path / "exports")  # the source's state at that time
        marks.append((at, exported["path"]))
        time.sleep(0.01)
    for i, (at, bundle) in enumerate(marks[:3]):
        target = f"faiss:{tmp_path / f'restored{i}'}"
        plan = api.restore(replica, target, at=at.isoformat(), dry_run=True)
        assert [e["kind"] for e in plan["chain"]] == ["full"] + ["delta"] * (i + 1)
        assert not Path(target[6:]).exists()  # a dry run creates nothing
        done = api.restore(replica, target, at=at.isoformat())
        assert done["import"]["chain"] == [e["snapshot_id"] for e in done["chain"]]
        scratch = f"faiss:{tmp_path / f'expected{i}'}"
        api.import_snapshot(bundle, scratch)
        assert state(target) == state(scratch)  # exactly the state exported at that time
    latest = api.restore(replica, f"faiss:{tmp_path / 'latest'}")
    assert len(latest["chain"]) == 5 and state(f"faiss:{tmp_path / 'latest'}") == state(source)
    with pytest.raises(InvalidInput, match="no full bundle at or before"):
        api.restore(replica, f"faiss:{tmp_path / 'never'}", at="2001-01-01T00:00:00")


def test_restore_cli_prints_the_plan_as_json(tmp_path):
    source, replica = f"faiss:{tmp_path / 'src'}", tmp_path / "replica"
    write(source, records("a", 20))
    api.replicate_once(source, replica)
    write(source, records("b", 2))
    api.replicate_once(source, replica)
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "restore", str(replica), f"faiss:{tmp_path / 't'}",
                           "--latest", "--dry-run", "--json"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert [e["kind"] for e in shown["chain"]] == ["full", "delta"] and shown["dry_run"] is True
    assert shown["import"]["would_insert"] == 22 and not (tmp_path / "t").exists()


def test_rpo_writes_older_than_one_interval_survive_the_loss_of_the_source(tmp_path):
    """replicate --interval 1s runs while a writer writes; then the source is destroyed (its folder removed).
    Every write acknowledged at least one interval (plus the longest shipping round) before the loss is in
    the restored store; the measured RPO is reported."""
    source, replica = f"faiss:{tmp_path / 'src'}", tmp_path / "replica"
    write(source, records("seed", 100))
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    proc = subprocess.Popen([sys.executable, "-m", "engine.cli", "replicate", source, "--to", str(replica),
                             "--interval", "1s", "--json"], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    acked: list[tuple[float, str]] = []
    stop = threading.Event()

    def writer() -> None:
        n = 0
        while not stop.is_set():
            rec = records(f"w{n:04d}_", 1, seed=n)
            write(source, rec)
            acked.append((time.time(), rec[0].id))
            n += 1
            time.sleep(0.05)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        time.sleep(6)
        stop.set()
        thread.join()
        time.sleep(0.3)
        lost_at = time.time()
        shutil.rmtree(tmp_path / "src")  # the source is destroyed
        time.sleep(1.5)  # the replicator notices nothing more to ship (its rounds now fail: no source)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
    rounds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    assert sum(1 for r in rounds if r["shipped"]) >= 3, err
    restored = f"faiss:{tmp_path / 'restored'}"
    api.restore(replica, restored)
    have = state(restored)
    interval, slack = 1.0, 1.0  # one interval, plus a shipping round on a loaded 2-core machine
    must = [rid for t, rid in acked if t <= lost_at - interval - slack]
    assert must and all(rid in have for rid in must), [rid for rid in must if rid not in have][:5]
    newest = max(t for t, rid in acked if rid in have)
    rpo = lost_at - newest
    assert rpo <= interval + slack + 0.5, rpo
    assert all(rid in have for rid in (f"seed{i:05d}" for i in range(100)))
