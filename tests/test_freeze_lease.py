"""A killed ``snapshot export --freeze`` never blocks writers for good; stores made before leases upgrade safely.

The freeze an export takes is a leased freeze held by the export's process: after a SIGKILL
``store stats`` reports it stale with its holder, the next writer clears it, and the front door's
leased freezes (the export process's "Set the freeze flag" step) behave the same for a dead runner.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psycopg
import pytest
from reference import with_options

from engine import api
from engine.repository import open_repository
from engine.synthetic import synthetic_batches

ROOT = Path(__file__).resolve().parents[1]
DIMS = 64


def store_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "faiss":
        return f"faiss:{tmp_path / 'store'}?index=flat"
    pg = request.getfixturevalue("pg_server")
    return with_options(pg.dsn, table=f"t_{uuid.uuid4().hex[:12]}", index="flat")


def procos(*args: str, code: int | None = 0) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    done = subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=180, cwd=ROOT)
    if code is not None:
        assert done.returncode == code, f"procos {' '.join(args)} -> {done.returncode}\n{done.stdout}{done.stderr}"
    return done


def seed(uri: str, count: int) -> None:
    repo = open_repository(uri, dimensions=DIMS)
    try:
        repo.bulk_load(synthetic_batches(count, DIMS, seed=1, batch_size=10_000))
    finally:
        repo.close()


def kill_once_frozen(argv: list[str], uri: str, timeout: float = 60.0) -> int:
    """Start ``argv``, SIGKILL it as soon as the store's freeze flag is set; return its pid."""
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    child = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + timeout
        while not api.is_paused(uri):
            assert child.poll() is None, f"ended before freezing: {child.stderr.read().decode()}"
            assert time.monotonic() < deadline, "the store was never frozen"
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.pid


@pytest.mark.parametrize("backend", ["faiss", "pgvector"])
def test_a_killed_freeze_export_is_reported_stale_and_the_next_writer_clears_it(backend, tmp_path, request):
    uri = store_uri(backend, tmp_path, request)
    seed(uri, 40_000)
    out = tmp_path / "snaps"
    pid = kill_once_frozen([sys.executable, "-m", "engine.cli", "snapshot", "export", uri, "--out", str(out),
                            "--freeze"], uri)
    stats = json.loads(procos("store", "stats", uri, "--json").stdout)
    assert (stats["paused"], stats["stale"]) == (True, True), stats
    assert stats["held_by"]["pid"] == pid and stats["held_by"]["kind"] == "export"
    assert stats["lease_expires"] is not None
    # the next writer proceeds (before leases it got "ingestion ... is paused", exit 75, forever)
    procos("store", "seed", uri, "--count", "10", "--dim", str(DIMS), "--seed", "9", "--no-artifacts")
    stats = json.loads(procos("store", "stats", uri, "--json").stdout)
    assert (stats["paused"], stats["stale"], stats["held_by"]) == (False, False, None)
    assert stats["count"] == 40_000  # seed 9 rewrote ten existing ids (same ids, newer rows)


def test_an_export_clears_a_stale_freeze_and_says_so(tmp_path):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    seed(uri, 200)
    gone = json.loads(subprocess.run(
        [sys.executable, "-c", "import json; from engine.repository import freeze; print(json.dumps(freeze.holder()))"],
        capture_output=True, text=True, check=True).stdout)
    repo = open_repository(uri)
    repo.pause_ingestion(gone, 3600)
    repo.close()
    for freeze_flag in ([], ["--freeze"]):
        done = json.loads(procos("snapshot", "export", uri, "--out", str(tmp_path / "snaps"), *freeze_flag,
                                 "--json").stdout)
        assert any("stale freeze" in w and f"pid {gone['pid']}" in w for w in done["warnings"]), done
        assert not api.is_paused(uri)
        repo = open_repository(uri)
        repo.pause_ingestion(gone, 3600)
        repo.close()


RUNNER = """
import sys, time
from engine import api
out = api.pause_ingestion(sys.argv[1], holder={"instance_id": "inst-1"}, lease_seconds=float(sys.argv[2]))
assert out["acquired"] and out["held_by"]["instance_id"] == "inst-1", out
print("frozen", flush=True)
time.sleep(600)
"""


def test_a_process_freeze_held_by_a_dead_runner_is_stale_and_a_retry_takes_it_over(tmp_path):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    seed(uri, 50)
    runner = subprocess.Popen([sys.executable, "-c", RUNNER, uri, "3"], stdout=subprocess.PIPE, text=True)
    try:
        assert runner.stdout.readline().strip() == "frozen"
        time.sleep(4.5)  # longer than the lease: the runner's own thread keeps renewing it
        live = api.store_stats(uri)
        assert (live["paused"], live["stale"], live["held_by"]["pid"]) == (True, False, runner.pid)
        runner.send_signal(signal.SIGKILL)
        runner.wait(30)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
    dead = api.store_stats(uri)
    assert (dead["paused"], dead["stale"], dead["held_by"]["instance_id"]) == (True, True, "inst-1")
    again = api.renew_pause(uri, {"instance_id": "inst-1"})  # instance retry: the new runner takes it over
    assert again["held"] is True and again["held_by"]["pid"] == os.getpid() and again["stale"] is False
    assert api.renew_pause(uri, {"instance_id": "inst-2"})["held"] is False
    done = api.resume_ingestion(uri, holder={"instance_id": "inst-1"})
    assert done["cleared"] is True and done["paused"] is False


def test_an_operators_pause_survives_the_cli_and_a_leased_resume(tmp_path):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    seed(uri, 50)
    procos("store", "pause", uri)
    stats = json.loads(procos("store", "stats", uri, "--json").stdout)
    assert (stats["paused"], stats["stale"], stats["held_by"]) == (True, False, None)
    assert api.resume_ingestion(uri, holder={"instance_id": "x"})["cleared"] is False
    done = procos("store", "seed", uri, "--count", "1", "--dim", str(DIMS), code=75)
    assert "paused" in done.stderr
    procos("store", "resume", uri)
    assert not api.is_paused(uri)


# --- stores made before freeze leases existed -----------------------------------------------------


def test_an_old_faiss_store_gets_the_lease_columns_and_keeps_its_pause(tmp_path):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    seed(uri, 20)
    with sqlite3.connect(tmp_path / "store" / "store.sqlite") as db:  # the state row as older versions wrote it
        db.execute("ALTER TABLE state DROP COLUMN held_by")
        db.execute("ALTER TABLE state DROP COLUMN lease_expires")
        db.execute("UPDATE state SET paused = 1")
    stats = api.store_stats(uri)
    assert (stats["paused"], stats["stale"], stats["held_by"]) == (True, False, None)  # an operator's pause
    with sqlite3.connect(tmp_path / "store" / "store.sqlite") as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(state)")}
    assert {"held_by", "lease_expires"} <= columns
    api.resume_ingestion(uri)
    api.seed_store(uri, 5, DIMS, seed=3, artifacts=False)


def test_an_old_pgvector_state_table_gets_the_lease_columns(pg_dsn):
    table = f"t_{uuid.uuid4().hex[:12]}"
    uri = with_options(pg_dsn, table=table)
    seed(uri, 20)
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE procos_store_state DROP COLUMN held_by, DROP COLUMN lease_expires")
        conn.execute("UPDATE procos_store_state SET paused = true WHERE table_name = %s", (table,))
    stats = api.store_stats(uri)  # opening the store adds the columns back
    assert (stats["paused"], stats["stale"], stats["held_by"]) == (True, False, None)
    api.resume_ingestion(uri)
    assert api.pause_ingestion(uri, holder={"kind": "test"})["acquired"] is True
    assert api.resume_ingestion(uri, holder={"kind": "test"})["cleared"] is True
