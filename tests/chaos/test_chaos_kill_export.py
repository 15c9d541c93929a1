"""SIGKILL at random moments of ``snapshot export`` from FAISS and pgvector, with and without ``--freeze``.

After each kill: no complete-looking bundle fails verify or holds other content; leftovers have a
dead writer and are removed by ``remove_stale`` (every tenth trial: by the next real export); the
source opens, answers queries and holds what it held; the freeze flag is clear, or (``--freeze``)
set, stale, held by the killed process, and cleared by the next writer or by ``store resume``.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest
from reference import build_records, with_options

from chaos.chaos_support import (
    answers_queries,
    assert_no_violations,
    calibrate,
    check_snapshots_folder,
    kill_moment,
    run_child,
    trial,
)
from engine import api
from engine.repository import open_repository
from engine.synthetic import synthetic_artifacts, synthetic_batches

DIMS = 32
OPS = ["export-faiss", "export-faiss-freeze", "export-pgvector", "export-pgvector-freeze"]


def records(chaos) -> int:
    return 20_000 if chaos.full else 6_000


def seed_store(uri: str, count: int) -> None:
    repo = open_repository(uri, dimensions=DIMS)
    try:
        repo.bulk_load(synthetic_batches(count, DIMS, seed=11, batch_size=10_000))
        for path, data in synthetic_artifacts(11).items():
            repo.artifacts.write(path, data)
    finally:
        repo.close()


@pytest.fixture(scope="module")
def sources(chaos, tmp_path_factory, pg_server) -> dict:
    root = tmp_path_factory.mktemp("chaos-export")
    count = records(chaos)
    faiss_uri = f"faiss:{root / 'source'}?index=hnsw"
    pg_uri = with_options(pg_server.dsn, table=f"chaos_{uuid.uuid4().hex[:10]}")
    seed_store(faiss_uri, count)
    seed_store(pg_uri, count)
    reference = api.export_snapshot(faiss_uri, root / "reference")
    assert api.export_snapshot(pg_uri, root / "reference-pg")["content_hash"] == reference["content_hash"]
    return {"root": root, "faiss": faiss_uri, "pgvector": pg_uri, "content_hash": reference["content_hash"],
            "count": count}


def clear_with_a_write(uri: str) -> None:
    [probe] = build_records(1, dims=DIMS, prefix="zz-chaos-probe-")
    repo = open_repository(uri)
    try:
        repo.upsert([probe])  # clears a stale freeze (a live one would raise IngestionPaused)
        repo.delete([probe.id])
    finally:
        repo.close()


@pytest.mark.parametrize("op", OPS)
def test_killed_export_leaves_no_false_bundle_and_no_stuck_freeze(chaos, sources, op):
    backend = op.split("-")[1]
    freeze = op.endswith("-freeze")
    uri = sources[backend]
    root: Path = sources["root"] / op
    root.mkdir()

    def argv(n: int) -> list[str]:
        return ["snapshot", "export", uri, "--out", str(root / f"out{n}"), *(["--freeze"] if freeze else []),
                "--json"]

    duration = calibrate(argv, runs=2 if chaos.full else 1)
    for n in chaos.trials(op, full=100, sample=1):
        with trial(chaos, op, n) as t:
            out = root / f"out{n}"
            run = run_child(argv(n), delay=kill_moment(t, duration))
            t.killed = run.killed
            if not run.killed:
                if t.ok(run.returncode == 0, f"the export failed unkilled: {run.stderr[-500:]}"):
                    t.ok(Path(json.loads(run.stdout)["path"]).parent == out, "the bundle is not in --out")
            # every tenth trial the next real export into the folder does the cleaning up
            clean = (lambda out=out: api.export_snapshot(uri, out)) if n % 10 == 0 else None
            check_snapshots_folder(out, t, content_hash=sources["content_hash"], records=sources["count"],
                                   clean=clean)
            stats = api.store_stats(uri)
            if stats["paused"]:
                t.note("stale_freeze_after_kill")
                t.ok(freeze and run.killed, f"the flag is set after an export that {'was killed' if run.killed else 'ended'}"
                     f" without --freeze: {stats}")
                t.ok(stats["stale"] is True and (stats["held_by"] or {}).get("pid") == run.pid,
                     f"the interrupted export's freeze is not reported stale with its holder: {stats}")
                if t.rng.random() < 0.5:
                    clear_with_a_write(uri)
                    t.note("cleared_by_a_writer")
                else:
                    api.resume_ingestion(uri)
                    t.note("cleared_by_store_resume")
                t.ok(not api.store_stats(uri)["paused"], "the stale freeze was not cleared")
            answers_queries(uri, t)
            t.ok(api.store_stats(uri)["count"] == sources["count"], "the source's record count changed")
    assert_no_violations(chaos, op)
