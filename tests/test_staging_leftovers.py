"""Leftovers of killed exports and packs: recorded writers, listed by the catalog, removed when their writer is gone."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine import api
from engine.repository import open_repository
from engine.snapshot import layout, pack_bundle
from engine.snapshot.staging import GRACE_SECONDS, claim, leftovers, read_state, remove_stale, start_bundle
from engine.synthetic import synthetic_batches

ROOT = Path(__file__).resolve().parents[1]
DIMS = 64


def seeded(tmp_path: Path, count: int) -> str:
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    repo = open_repository(uri, dimensions=DIMS)
    try:
        repo.bulk_load(synthetic_batches(count, DIMS, seed=1, batch_size=10_000))
    finally:
        repo.close()
    return uri


def staging_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.iterdir() if layout.is_staging_name(p.name)) if out.is_dir() else []


def kill_export_once_staging_exists(uri: str, out: Path) -> int:
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    child = subprocess.Popen([sys.executable, "-m", "engine.cli", "snapshot", "export", uri, "--out", str(out)],
                             env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        while not any(layout.state_path(p).is_file() for p in staging_folders(out)):
            assert child.poll() is None, child.stderr.read().decode()
            assert time.monotonic() < deadline
            time.sleep(0.005)
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    return child.pid


def test_a_killed_exports_staging_folder_is_listed_by_the_catalog_and_removed_by_the_next_export(tmp_path):
    uri = seeded(tmp_path, 40_000)
    out = tmp_path / "snaps"
    pid = kill_export_once_staging_exists(uri, out)
    [left] = staging_folders(out)
    assert read_state(left)["writer"]["pid"] == pid
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    done = subprocess.run([sys.executable, "-m", "engine.cli", "snapshot", "catalog", str(out), "--json"],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    report = json.loads(done.stdout)
    [item] = report["leftovers"]
    assert (item["path"], item["kind"], item["writer_alive"], item["writer"]["pid"]) == (left.name, "staging",
                                                                                         False, pid)
    assert item["age_seconds"] >= 0 and report["ok"] is True  # leftovers are not problems of the bundles
    human = subprocess.run([sys.executable, "-m", "engine.cli", "snapshot", "catalog", str(out)],
                           capture_output=True, text=True, env=env, cwd=ROOT, timeout=120).stdout
    assert f"leftover staging: {left.name}" in human and "writer is gone" in human
    result = api.export_snapshot(uri, out)  # the next export into the same folder cleans up
    assert staging_folders(out) == [] and Path(result["path"]).is_dir()
    assert api.snapshot_catalog(out, quick=True)["leftovers"] == []


def test_a_live_writers_staging_folder_is_never_removed(tmp_path):
    out = tmp_path / "snaps"
    mine = start_bundle(out)  # this process is its writer, and alive
    other = start_bundle(out)  # a second export starting meanwhile removes only stale leftovers
    assert set(staging_folders(out)) == {mine, other}
    assert remove_stale(out) == [] and api.remove_stale_staging(out)["removed"] == []
    [a, b] = leftovers(out)
    assert a["writer_alive"] is True and b["writer_alive"] is True


def test_a_later_step_claims_the_folder_so_a_retry_in_a_new_process_keeps_it(tmp_path):
    out = tmp_path / "snaps"
    code = "import sys; from engine.snapshot.staging import start_bundle; print(start_bundle(sys.argv[1]))"
    staging = Path(subprocess.run([sys.executable, "-c", code, str(out)], capture_output=True, text=True,
                                  check=True).stdout.strip())
    [item] = leftovers(out)
    assert item["writer_alive"] is False  # its creator has exited
    claim(staging)  # e.g. dump_embeddings of a retried process instance, in this process
    assert leftovers(out)[0]["writer_alive"] is True and remove_stale(out) == []
    assert staging.is_dir()


def test_a_staging_folder_without_a_writer_record_is_removed_only_after_the_grace_period(tmp_path):
    out = tmp_path / "snaps"
    old = out / ".knowledge_snapshot_20240101_000000_tmp-abcd1234"  # as older versions left them
    old.mkdir(parents=True)
    (old / ".export_state.json").write_text(json.dumps({"stem": "knowledge_snapshot_20240101_000000"}))
    [item] = leftovers(out)
    assert (item["writer"], item["writer_alive"]) == (None, None)
    assert remove_stale(out) == [] and old.is_dir()
    removed = remove_stale(out, now=time.time() + GRACE_SECONDS + 60)
    assert [r["path"] for r in removed] == [old.name] and not old.exists()


def test_a_killed_packs_temporary_archive_is_a_leftover_the_next_export_removes(tmp_path):
    uri = seeded(tmp_path, 300)
    out = tmp_path / "snaps"
    bundle = Path(api.export_snapshot(uri, out)["path"])
    code = ("import os, sys, zstandard; from engine.snapshot import pack\n"
            "real = zstandard.ZstdCompressor\n"
            "class Dying(real):\n"
            "    def stream_writer(self, raw, **kw):\n"
            "        raw.write(b'partial'); raw.flush(); os.kill(os.getpid(), 9)\n"
            "zstandard.ZstdCompressor = Dying\n"
            "pack.pack_bundle(sys.argv[1])\n")
    assert subprocess.run([sys.executable, "-c", code, str(bundle)], timeout=120).returncode == -9
    [item] = leftovers(out)
    assert item["kind"] == "pack" and item["writer_alive"] is False and item["path"].endswith(
        layout.pack_temp_writer(item["path"]))
    assert not layout.archive_path(bundle).exists()  # nothing looks like a finished archive
    api.export_snapshot(uri, out)
    assert leftovers(out) == []
    archive = pack_bundle(bundle)
    assert archive.is_file() and leftovers(out) == []


def test_a_staging_folder_killed_before_its_state_file_is_known_by_the_writer_token_in_its_name(tmp_path):
    out = tmp_path / "snaps"
    code = ("import os, sys; from engine.snapshot.staging import start_bundle; s = start_bundle(sys.argv[1]); "
            "os.remove(os.path.join(s, '.export_state.json'))")  # as if killed between mkdir and the state file
    subprocess.run([sys.executable, "-c", code, str(out)], check=True, timeout=60)
    [item] = leftovers(out)
    assert item["writer_alive"] is False and "token" in item["writer"]
    assert [r["path"] for r in remove_stale(out)] == [item["path"]] and staging_folders(out) == []
