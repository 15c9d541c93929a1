"""SIGKILL at random moments of ``snapshot import`` (replace and append, into FAISS and pgvector) and of a
delta chain import.

The target starts with OLD records (3,000 ids of its own plus 1,000 ids the bundle also holds, at an
older version) and one artifact. After each kill the target opens and answers queries and holds:

- replace: exactly the old records or exactly the bundle's (artifacts: old, or new once the records are),
  also with ``--jobs 3`` into pgvector (three connections load ranges of shards, one commit swaps them in);
- append: the old records updated by a whole number of import batches, in bundle order (pgvector
  writes an import in one transaction: none or all); artifacts come after the records;
- a chain (FAISS append, or pgvector replace): likewise against the chain's final state.

Every tenth trial runs the import again, unkilled, and checks it reaches the final state.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid

import numpy as np
import pytest
from reference import with_options

from chaos.chaos_support import (
    Rows,
    answers_queries,
    assert_no_violations,
    bundle_rows,
    calibrate,
    kill_moment,
    run_child,
    store_rows,
    trial,
)
from engine import api
from engine.records import canonical_json, make_batch
from engine.repository import open_repository
from engine.snapshot.importer import IMPORT_BATCH
from engine.snapshot.reader import open_bundle, read_artifacts
from engine.synthetic import record_id, synthetic_artifacts, synthetic_batches

DIMS = 16
OLD_ART = {"prompts/old_thing_v1.yaml": b"old: true\n"}
OPS = ["import-faiss-replace", "import-faiss-append", "import-pgvector-replace", "import-pgvector-append",
       "import-pgvector-replace-j3"]  # --jobs 3: three ranges of shards load side by side (pg_parallel)
SHARDED_ROWS = 3_000  # the shard size of the bundle the --jobs op imports (4 to 10 shards)


def old_batch(overlap: int = 1_000, own: int = 3_000):
    ids = sorted([f"old-{i:05d}" for i in range(own)] + [record_id(i) for i in range(overlap)])
    vectors = np.random.default_rng(3).standard_normal((len(ids), DIMS)).astype(np.float32)
    return make_batch(ids=ids, vectors=vectors, metadata=[canonical_json({"old": True})] * len(ids),
                      versions=[0] * len(ids), source_hashes=["old"] * len(ids), created_us=[0] * len(ids),
                      updated_us=[0] * len(ids))


def make_target(uri: str, batch) -> None:
    repo = open_repository(uri, dimensions=DIMS)
    try:
        repo.bulk_load([batch])
        for path, data in OLD_ART.items():
            repo.artifacts.write(path, data)
    finally:
        repo.close()


def artifact_set(uri: str) -> dict[str, str]:
    repo = open_repository(uri, create=False)
    try:
        return {a.path: a.sha256 for a in repo.artifacts.list()}
    finally:
        repo.close()


def applied(old: Rows, new: Rows, order: list[str], upto: int) -> Rows:
    """The old rows with the first ``upto`` bundle rows written over them (the version rule: newer wins)."""
    out = dict(old)
    for rid in order[:upto]:
        if rid not in old or new[rid][0] > old[rid][0]:
            out[rid] = new[rid]
    return out


@pytest.fixture(scope="module")
def world(chaos, tmp_path_factory, pg_server) -> dict:
    root = tmp_path_factory.mktemp("chaos-import")
    count = 30_000 if chaos.full else 12_000
    source = f"faiss:{root / 'source'}?index=flat"
    repo = open_repository(source, dimensions=DIMS)
    repo.bulk_load(synthetic_batches(count, DIMS, seed=21, batch_size=10_000))
    for path, data in synthetic_artifacts(21).items():
        repo.artifacts.write(path, data)
    repo.close()
    bundle = api.export_snapshot(source, root / "snaps")["path"]
    sharded = api.export_snapshot(source, root / "snaps-sharded", shard_rows=SHARDED_ROWS)["path"]
    new, order, bounds = bundle_rows(bundle)
    old = old_batch()
    pristine = f"faiss:{root / 'pristine-target'}?index=flat"
    make_target(pristine, old)
    with open_bundle(bundle) as broot:
        new_art = {p: hashlib.sha256(d).hexdigest() for p, d in read_artifacts(broot).items()}
    return {"root": root, "bundle": bundle, "sharded": sharded, "new": new, "order": order, "bounds": bounds,
            "old": store_rows(pristine), "old_batch": old, "pristine": root / "pristine-target",
            "pg": pg_server, "new_art": new_art, "old_art": artifact_set(pristine)}


def fresh_target(world: dict, backend: str, name: str) -> str:
    if backend == "faiss":
        shutil.copytree(world["pristine"], world["root"] / name)
        return f"faiss:{world['root'] / name}"
    uri = with_options(world["pg"].dsn, table=f"chaos_{uuid.uuid4().hex[:10]}", index="flat")
    make_target(uri, world["old_batch"])
    return uri


def check_import(t, world: dict, uri: str, *, mode: str, backend: str, new: Rows, order: list[str],
                 bounds: list[int], new_art: dict[str, str]) -> None:
    answers_queries(uri, t)
    rows = store_rows(uri)
    arts = artifact_set(uri)
    old, old_art = world["old"], world["old_art"]
    t.ok(not api.store_stats(uri)["paused"], "the import left the target frozen")
    if mode == "replace":
        if rows == old:
            t.note("target_old")
            t.ok(arts == old_art, "old records but not the old artifacts")
        elif t.ok(rows == new, f"replace left neither the old nor the new records ({len(rows)} rows)"):
            t.note("target_new")
            t.ok(arts in (old_art, new_art), "the artifacts are neither the old nor the new set")
        return
    allowed = bounds if backend == "faiss" else [0, bounds[-1]]
    matched = [upto for upto in allowed if rows == applied(old, new, order, upto)]
    if t.ok(matched, f"append left something other than the old records plus whole batches ({len(rows)} rows)"):
        t.note(f"batches_written_{allowed.index(matched[0])}_of_{len(allowed) - 1}")
        t.ok(set(old_art) <= set(arts) <= set(old_art) | set(new_art), "append lost or invented artifacts")
        if set(arts) - set(old_art):
            t.ok(matched[0] == bounds[-1], "artifacts were written before all records were")


@pytest.mark.parametrize("op", OPS)
def test_killed_import_leaves_old_or_new_records_only(chaos, world, op):
    _, backend, mode, *jobs = op.split("-")
    new_art = world["new_art"]
    bundle, extra = (world["sharded"], ["--jobs", jobs[0][1:]]) if jobs else (world["bundle"], [])

    def argv(uri: str) -> list[str]:
        return ["snapshot", "import", bundle, uri, "--mode", mode, "--json", *extra]

    targets: dict[int, str] = {}

    def prepare(n: int) -> None:
        targets[n] = fresh_target(world, backend, f"{op}-t{n}")

    duration = calibrate(lambda n: argv(targets[n]), prepare, runs=2 if chaos.full else 1)
    for n in chaos.trials(op, full=100, sample=1):
        with trial(chaos, op, n) as t:
            prepare(n)
            uri = targets[n]
            run = run_child(argv(uri), delay=kill_moment(t, duration))
            t.killed = run.killed
            if not run.killed:
                t.ok(run.returncode == 0, f"the import failed unkilled: {run.stderr[-500:]}")
            check_import(t, world, uri, mode=mode, backend=backend, new=world["new"], order=world["order"],
                         bounds=world["bounds"], new_art=new_art)
            if n % 10 == 0:
                again = run_child(argv(uri), delay=None)
                t.ok(again.returncode == 0, f"the import run again failed: {again.stderr[-500:]}")
                final = world["new"] if mode == "replace" else applied(world["old"], world["new"], world["order"],
                                                                        len(world["order"]))
                t.ok(store_rows(uri) == final, "running the import again did not reach the final state")
    assert_no_violations(chaos, op)


# --- a delta chain ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def chain(chaos, world) -> dict:
    """A full bundle and two deltas of one store (updates, new ids, deletes), and the chain's final state."""
    root = world["root"] / "chain"
    count = 30_000 if chaos.full else 12_000
    source = f"faiss:{root / 'source'}?index=flat"
    repo = open_repository(source, dimensions=DIMS)
    repo.bulk_load(synthetic_batches(count, DIMS, seed=31, batch_size=10_000))
    repo.close()
    full = api.export_snapshot(source, root / "snaps")["path"]
    bundles = [full]
    for step, seed in ((1, 32), (2, 33)):
        repo = open_repository(source)
        changed = next(synthetic_batches(3_000, DIMS, seed=seed, batch_size=3_000))
        changed.versions[:] = step + 1
        repo.write_batch(changed)  # new versions of the first 3,000 ids
        repo.delete([record_id(i) for i in range(count - 500 * step, count - 500 * (step - 1))])
        repo.close()
        bundles.append(api.export_delta(source, bundles[-1], root / "snaps")["path"])
    final = api.export_snapshot(source, root / "final")["path"]
    rows, order, _ = bundle_rows(final)
    bounds = list(range(0, len(order), IMPORT_BATCH)) + [len(order)]
    return {"bundles": bundles, "new": rows, "order": order, "bounds": bounds}


def test_killed_chain_import_leaves_old_or_final_records_only(chaos, world, chain):
    op = "import-chain"

    def argv(uri: str, mode: str) -> list[str]:
        return ["snapshot", "import", *chain["bundles"], uri, "--mode", mode, "--json"]

    cases = {"faiss": "append", "pgvector": "replace"}
    targets: dict[int, str] = {}
    durations = {}
    for backend, mode in cases.items():
        def prepare(n: int, backend: str = backend) -> None:
            targets[n] = fresh_target(world, backend, f"{op}-{backend}-t{n}")

        durations[backend] = calibrate(lambda n, mode=mode: argv(targets[n], mode), prepare,
                                       runs=2 if chaos.full else 1)
    for n in chaos.trials(op, full=100, sample=2):
        backend = "faiss" if n % 2 == 0 else "pgvector"
        mode = cases[backend]
        with trial(chaos, op, n) as t:
            uri = fresh_target(world, backend, f"{op}-{backend}-{n}")
            run = run_child(argv(uri, mode), delay=kill_moment(t, durations[backend]))
            t.killed = run.killed
            t.note(f"{backend}_{mode}")
            if not run.killed:
                t.ok(run.returncode == 0, f"the chain import failed unkilled: {run.stderr[-500:]}")
            check_chain(t, world, uri, mode=mode, chain=chain)
    assert_no_violations(chaos, op)


def check_chain(t, world: dict, uri: str, *, mode: str, chain: dict) -> None:
    answers_queries(uri, t)
    rows = store_rows(uri)
    old, new = world["old"], chain["new"]
    if mode == "replace":
        t.ok(rows in (old, new), f"a chain replace left neither the old nor the final records ({len(rows)} rows)")
        return
    matched = [upto for upto in chain["bounds"] if rows == applied(old, new, chain["order"], upto)]
    t.ok(matched, f"a chain append left something other than the old records plus whole batches ({len(rows)})")
