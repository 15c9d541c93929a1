"""Concurrency: random write mixes committing during every export, two imports into one target at once,
two exports of one store at once.

- A writer (upserts of new ids, new versions of stored ids, deletes, in random mixes and sizes) commits
  while ``snapshot export`` runs: the bundle equals the store's state after some prefix of the
  writer's commits (one consistent view: never a torn write). With ``--freeze`` the writes are
  refused meanwhile, and the bundle is the state before the freeze.
- Two ``snapshot import`` into one target at the same moment: each succeeds or fails cleanly (FAISS:
  ``store ... is locked``, exit 75, two lines; pgvector: the second waits), and the target ends as one
  successful import left it.
- Two ``snapshot export`` of one store into one folder at once: both succeed with the same content,
  under distinct names, and nothing is left frozen or behind.
"""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from reference import with_options

from chaos.chaos_support import (
    assert_no_violations,
    bundle_rows,
    check_snapshots_folder,
    fingerprint,
    run_child,
    store_rows,
    trial,
)
from engine import api
from engine.errors import IngestionPaused
from engine.records import canonical_json, make_batch
from engine.repository import open_repository
from engine.snapshot.staging import leftovers
from engine.synthetic import synthetic_artifacts, synthetic_batches

DIMS = 16


def new_store(world: dict, backend: str, count: int, seed: int) -> str:
    if backend == "faiss":
        uri = f"faiss:{world['root'] / uuid.uuid4().hex[:8]}?index=flat"
    else:
        uri = with_options(world["pg"].dsn, table=f"chaos_{uuid.uuid4().hex[:10]}", index="flat")
    repo = open_repository(uri, dimensions=DIMS)
    try:
        repo.bulk_load(synthetic_batches(count, DIMS, seed=seed, batch_size=10_000))
        for path, data in synthetic_artifacts(seed).items():
            repo.artifacts.write(path, data)
    finally:
        repo.close()
    return uri


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_server) -> dict:
    return {"root": tmp_path_factory.mktemp("chaos-concurrency"), "pg": pg_server}


class Writer(threading.Thread):
    """Random write mixes until stopped; ``states`` holds the store's rows after each commit, in order."""

    def __init__(self, uri: str, rows: dict, rng) -> None:
        super().__init__(daemon=True)
        self.uri, self.rng = uri, rng
        self.states = [dict(rows)]
        self.stop = threading.Event()
        self.refused = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        repo = open_repository(self.uri)
        serial = 0
        try:
            while not self.stop.is_set():
                current = dict(self.states[-1])
                kind = self.rng.choice(["insert", "update", "delete", "mixed"])
                size = self.rng.randint(1, 300)
                stored = sorted(current)
                ids: set[str] = set()
                if kind in ("insert", "mixed"):
                    ids |= {f"new-{serial:06d}-{i:04d}" for i in range(size)}
                if kind in ("update", "mixed") and stored:
                    ids |= set(self.rng.sample(stored, min(size, len(stored))))
                gone = self.rng.sample(stored, min(size, len(stored))) if kind == "delete" and stored else []
                serial += 1
                try:
                    if ids:
                        batch = self._batch(sorted(ids), current, serial)
                        repo.write_batch(batch)
                        current.update(fingerprint(batch))
                    if gone:
                        repo.delete(gone)
                        for rid in gone:
                            current.pop(rid, None)
                except IngestionPaused:
                    self.refused += 1
                    self.stop.wait(0.02)
                    continue
                self.states.append(current)
                self.stop.wait(self.rng.uniform(0, 0.02))
        except BaseException as exc:  # noqa: BLE001 - reported by the trial
            self.error = exc
        finally:
            repo.close()

    def _batch(self, ids: list[str], current: dict, serial: int):
        vectors = np.random.default_rng(serial).standard_normal((len(ids), DIMS)).astype(np.float32)
        versions = [current[r][0] + 1 if r in current else 1 for r in ids]
        return make_batch(ids=ids, vectors=vectors, metadata=[canonical_json({"w": serial})] * len(ids),
                          versions=versions, source_hashes=["w"] * len(ids), created_us=[0] * len(ids),
                          updated_us=[0] * len(ids))


@pytest.mark.parametrize("backend", ["faiss", "pgvector"])
def test_an_export_is_one_consistent_view_under_random_write_mixes(chaos, world, backend):
    op = f"concurrent-writes-{backend}"
    for n in chaos.trials(op, full=30, sample=1):
        with trial(chaos, op, n) as t:
            freeze = t.rng.random() < 0.3
            uri = new_store(world, backend, 8_000, seed=91)
            writer = Writer(uri, store_rows(uri), t.rng)
            writer.start()
            out = world["root"] / f"{op}-{n}"
            run = run_child(["snapshot", "export", uri, "--out", str(out), "--json", *(["--freeze"] if freeze else [])],
                            delay=None)
            writer.stop.set()
            writer.join(60)
            t.ok(writer.error is None, f"the writer failed: {writer.error!r}")
            t.ok(run.returncode == 0, f"the export failed: {run.stderr[-300:]}")
            [bundle] = [p for p in out.iterdir() if p.name.startswith("knowledge_snapshot_")]
            rows, _, _ = bundle_rows(bundle)
            matches = [i for i, state in enumerate(writer.states) if state == rows]
            t.ok(matches, f"the bundle is not the store's state after any prefix of {len(writer.states) - 1} commits")
            t.note(f"commits_during_export_{min(len(writer.states) - 1, 50) // 10 * 10}+")
            if freeze:
                t.note("with_freeze")
                if writer.refused:
                    t.note("writes_refused_by_the_freeze")
                t.ok(not api.store_stats(uri)["paused"], "the export left the store frozen")
            check_snapshots_folder(out, t, content_hash=api.verify_snapshot(bundle)["manifest"]["content_hash"],
                                   records=len(rows))
    assert_no_violations(chaos, op)


@pytest.mark.parametrize("backend", ["faiss", "pgvector"])
@pytest.mark.parametrize("mode", ["replace", "append"])
def test_two_imports_into_one_target_at_once(chaos, world, backend, mode):
    op = f"two-imports-{backend}-{mode}"
    sources = [new_store(world, "faiss", 6_000, seed=seed) for seed in (92, 93)]
    bundles = [api.export_snapshot(s, world["root"] / f"{op}-src")["path"] for s in sources]
    contents = [bundle_rows(b)[0] for b in bundles]  # the same ids, other vectors (append: ties keep the stored)
    for n in chaos.trials(op, full=10, sample=1):
        with trial(chaos, op, n) as t:
            target = new_store(world, backend, 1_000, seed=94)
            old = store_rows(target)
            results: list = [None, None]

            def go(i: int, target: str = target, results: list = results) -> None:
                results[i] = run_child(["snapshot", "import", bundles[i], target, "--mode", mode, "--json"],
                                       delay=None)

            threads = [threading.Thread(target=go, args=(i,)) for i in (0, 1)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(600)
            ok = [r.returncode == 0 for r in results]
            t.ok(any(ok), f"neither import succeeded: {[r.stderr[-200:] for r in results]}")
            for r in results:
                if r.returncode != 0:
                    lines = r.stderr.splitlines()
                    t.note(f"second_failed_exit_{r.returncode}")
                    t.ok(r.returncode == 75 and len(lines) == 2 and "locked" in lines[0],
                         f"a concurrent import failed uncleanly: {r.stderr[-300:]}")
            if all(ok):
                t.note("both_succeeded")
            rows = store_rows(target)
            if mode == "replace":
                t.ok(any(rows == contents[i] for i in (0, 1) if ok[i]),
                     "the target is not what one successful import left")
            else:
                expected = []
                for order in ((0, 1), (1, 0)):
                    state = dict(old)
                    for i in order:
                        if ok[i]:
                            for rid, value in contents[i].items():
                                if rid not in state or value[0] > state[rid][0]:
                                    state[rid] = value
                    expected.append(state)
                t.ok(rows in expected, "the target is not the old records plus what the successful imports wrote")
    assert_no_violations(chaos, op)


@pytest.mark.parametrize("backend", ["faiss", "pgvector"])
def test_two_exports_of_one_store_at_once(chaos, world, backend):
    op = f"two-exports-{backend}"
    uri = new_store(world, backend, 8_000, seed=95)
    reference = api.export_snapshot(uri, world["root"] / f"{op}-ref")
    for n in chaos.trials(op, full=10, sample=1):
        with trial(chaos, op, n) as t:
            out = world["root"] / f"{op}-{n}"
            flags = [["--freeze"] if t.rng.random() < 0.5 else [] for _ in (0, 1)]
            results: list = [None, None]

            def go(i: int, out: Path = out, flags: list = flags, results: list = results) -> None:
                results[i] = run_child(["snapshot", "export", uri, "--out", str(out), "--json", *flags[i]], delay=None)

            threads = [threading.Thread(target=go, args=(i,)) for i in (0, 1)]
            for th in threads:
                th.start()
            for th in threads:
                th.join(600)
            t.ok(all(r.returncode == 0 for r in results), f"an export failed: {[r.stderr[-200:] for r in results]}")
            bundles = sorted(p.name for p in out.iterdir() if p.name.startswith("knowledge_snapshot_"))
            t.ok(len(bundles) == 2 and len(set(bundles)) == 2, f"two exports gave {bundles}")
            check_snapshots_folder(out, t, content_hash=reference["content_hash"], records=reference["record_count"])
            t.ok(leftovers(out) == [], "leftovers after two exports")
            t.ok(not api.store_stats(uri)["paused"], "two exports left the store frozen")
            t.ok(api.snapshot_catalog(out, quick=True)["ok"], "the catalog of the two exports has problems")
    assert_no_violations(chaos, op)
