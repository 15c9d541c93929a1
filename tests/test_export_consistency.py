"""An export is one consistent view of the store: a write committed while it runs is in the bundle
entirely or not at all, and the bundle equals what the store held at one single point.
Also: ``--freeze`` on the CLI leaves the store unfrozen after a failed export."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from reference import with_options

from engine.records import canonical_json, make_batch
from engine.repository import open_repository
from engine.snapshot import export_snapshot, verify_bundle
from engine.synthetic import record_id, synthetic_artifacts, synthetic_batches

DIMS = 8
SIZES = {"pgvector": 20_000, "faiss": 5_000}
EXPORT_BATCH = 250


def store_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "faiss":
        return f"faiss:{tmp_path / 'store'}?index=flat"
    pg = request.getfixturevalue("pg_server")
    table = f"t_{uuid.uuid4().hex[:12]}"
    return (with_options(pg.dsn, table=table, index="flat") if pg.datadir is None
            else f"postgresql+embedded:{pg.datadir}?table={table}&index=flat")


def the_write(count: int):
    """ONE write_batch: new ids sorting before and after every stored id, and new versions of stored
    records at both ends of the id range (so a reader without one snapshot would tear it)."""
    new = ["aaa-new-0", "aaa-new-1", "zzz-new-0", "zzz-new-1"]
    updated = [record_id(i) for i in (1, 2, count - 2, count - 1)]
    ids = sorted(new + updated)
    vectors = np.random.default_rng(5).standard_normal((len(ids), DIMS)).astype(np.float32)
    return make_batch(ids=ids, vectors=vectors, metadata=[canonical_json({"written": "during export"})] * len(ids),
                      versions=[2] * len(ids), source_hashes=["during"] * len(ids),
                      created_us=[0] * len(ids), updated_us=[0] * len(ids)), new, updated


def rows_of(batches: Iterator) -> dict[str, tuple]:
    """``{id: (version, metadata, vector bytes)}``."""
    out = {}
    for b in batches:
        for i, rid in enumerate(b.ids):
            out[rid] = (int(b.versions[i]), b.metadata[i], b.vectors[i].astype("<f4").tobytes())
    return out


def bundle_rows(bundle: str) -> dict[str, tuple]:
    table = pq.read_table(Path(bundle) / "embeddings/part-00000.parquet")
    vectors = np.asarray(table.column("vector").combine_chunks().flatten(), dtype="<f4").reshape(-1, DIMS)
    return {rid: (v, m, vec.tobytes()) for rid, v, m, vec in zip(
        table.column("id").to_pylist(), table.column("version").to_pylist(),
        table.column("metadata").to_pylist(), vectors, strict=True)}


def gate(repo, reached: threading.Event, release: threading.Event) -> None:
    """Make ``repo.iter_batches`` stop after its first batch (its snapshot is taken by then) until released."""
    original = repo.iter_batches

    def stream(batch_size: int = 10_000):
        source = original(batch_size)
        try:
            first = next(source)  # the COPY / read transaction is open and has read rows
            reached.set()
            if not release.wait(60):
                raise TimeoutError("the test never released the export")
            yield first
            yield from source
        finally:
            source.close()

    repo.iter_batches = stream


@pytest.mark.parametrize("backend", ["pgvector", "faiss"])
def test_a_write_committed_during_export_is_all_or_nothing(backend: str, tmp_path: Path,
                                                           request: pytest.FixtureRequest):
    count = SIZES[backend]
    uri = store_uri(backend, tmp_path, request)
    repo = open_repository(uri, dimensions=DIMS)
    repo.bulk_load(synthetic_batches(count, DIMS, seed=2, batch_size=5_000))
    for path, data in synthetic_artifacts(2).items():
        repo.artifacts.write(path, data)
    before = rows_of(repo.iter_batches(5_000))
    batch, new, updated = the_write(count)
    reached, release = threading.Event(), threading.Event()
    gate(repo, reached, release)
    outcome: dict = {}

    def run_export() -> None:
        try:
            outcome["result"] = export_snapshot(repo, tmp_path / "snaps", batch_size=EXPORT_BATCH)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread below
            outcome["error"] = exc

    exporter = threading.Thread(target=run_export)
    exporter.start()
    try:
        assert reached.wait(60), "the export never started reading"
        writer = open_repository(uri)  # another connection (FAISS: another SQLite connection and index)
        try:
            assert writer.write_batch(batch).written == len(batch)
            assert writer.count() == count + len(new)  # committed and visible to everyone else
        finally:
            writer.close()
        assert exporter.is_alive() and "result" not in outcome  # the export is still mid-stream
    finally:
        release.set()
        exporter.join(120)
    if "error" in outcome:
        raise outcome["error"]
    del repo.iter_batches
    after = rows_of(repo.iter_batches(5_000))
    repo.close()

    result = outcome["result"]
    exported = bundle_rows(result.path)
    present = {rid for rid in new if rid in exported}
    updated_v2 = {rid for rid in updated if exported[rid][0] == 2}
    assert (present, updated_v2) in [(set(), set()), (set(new), set(updated))], \
        f"torn write: new ids present {sorted(present)}, updated ids at version 2 {sorted(updated_v2)}"
    assert exported in (before, after), "the bundle is not what the store held at any single point"
    assert exported == before  # the snapshot was taken before the write committed
    assert result.record_count == len(exported) == count and verify_bundle(result.path).ok


# --- --freeze through the CLI -----------------------------------------------------------------------

def procos(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          env=env, timeout=120)


def paused(uri: str) -> bool:
    proc = procos("store", "stats", uri, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)["paused"]


def seeded(uri: str, count: int = 50) -> None:
    repo = open_repository(uri, dimensions=DIMS)
    try:
        repo.bulk_load(synthetic_batches(count, DIMS, seed=4))
    finally:
        repo.close()


@pytest.mark.parametrize("backend", ["faiss", "pgvector"])
def test_freeze_is_cleared_when_the_export_cannot_write_its_folder(backend: str, tmp_path: Path,
                                                                   request: pytest.FixtureRequest):
    uri = store_uri(backend, tmp_path, request)
    seeded(uri)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    proc = procos("snapshot", "export", uri, "--out", str(blocker / "snaps"), "--freeze")
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
    assert paused(uri) is False


def test_freeze_is_cleared_when_the_export_fails_after_freezing(tmp_path: Path):
    """A damaged row makes the export fail mid-stream, i.e. after the flag was set."""
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    seeded(uri, count=500)
    damaged = record_id(400)
    with sqlite3.connect(tmp_path / "store" / "store.sqlite") as db:
        (blob,) = db.execute("SELECT vector FROM records WHERE id = ?", (damaged,)).fetchone()
        db.execute("UPDATE records SET vector = x'00000000' WHERE id = ?", (damaged,))
    out = tmp_path / "snaps"
    proc = procos("snapshot", "export", uri, "--out", str(out), "--freeze")
    assert proc.returncode == 1 and proc.stderr.startswith("Error: ") and "Traceback" not in proc.stderr
    assert paused(uri) is False
    assert list(out.iterdir()) == []  # the staging folder is gone too
    # and the same export without the damage succeeds, leaving the flag cleared
    with sqlite3.connect(tmp_path / "store" / "store.sqlite") as db:
        db.execute("UPDATE records SET vector = ? WHERE id = ?", (blob, damaged))
    proc = procos("snapshot", "export", uri, "--out", str(out), "--freeze", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["record_count"] == 500 and paused(uri) is False
