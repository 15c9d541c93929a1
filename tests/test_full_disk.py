"""Running out of room is a clean DiskFull error, whatever layer hits it (found by the chaos campaign).

A child process runs ``procos`` under ``RLIMIT_FSIZE`` (with SIGXFSZ ignored), so every write past
the limit fails with EFBIG exactly as a full disk fails with ENOSPC; tests/chaos/test_chaos_disk.py
does the same on a mounted tmpfs where it may. Before the fix, SQLite's own rollback of the failed
transaction made ours raise "cannot rollback - no transaction is active", hiding the cause.
"""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def limited(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def procos(*args: str, limit: int | None = None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=180, preexec_fn=limited(limit) if limit else None)


def test_a_store_that_runs_out_of_room_reports_a_full_disk(tmp_path):
    done = procos("store", "seed", f"faiss:{tmp_path / 's'}", "--count", "20000", "--dim", "32", limit=300_000)
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert lines[0].startswith("Error: ") and "no space left" in lines[0].lower(), lines[0]
    assert "no transaction is active" not in done.stderr and lines[1].startswith("Try: free space")


def test_an_export_that_runs_out_of_room_reports_a_full_disk_and_publishes_nothing(tmp_path):
    assert procos("store", "seed", f"faiss:{tmp_path / 's'}", "--count", "20000", "--dim", "32").returncode == 0
    out = tmp_path / "snaps"
    done = procos("snapshot", "export", f"faiss:{tmp_path / 's'}", "--out", str(out), "--freeze", limit=400_000)
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert "File too large" in lines[0] and str(out) in lines[0]
    assert list(out.iterdir()) == []
    assert '"paused": false' in procos("store", "stats", f"faiss:{tmp_path / 's'}", "--json").stdout


def small_remote_bundle(s3, tmp_path: Path) -> Path:
    """A bundle of about 1 MB (its embeddings shard alone over 600 kB), pushed as a folder and as a .tar.zst."""
    from engine import api
    from engine.snapshot import pack_bundle

    store = f"faiss:{tmp_path / 'src'}?index=flat"
    api.seed_store(store, 3000, 64, seed=5)
    bundle = Path(api.export_snapshot(store, tmp_path / "snaps")["path"])
    api.push_snapshot(bundle, s3.url("p"))
    api.push_snapshot(pack_bundle(bundle), s3.url("p"))
    return bundle


def full_disk_error(done: subprocess.CompletedProcess, words: str) -> str:
    lines = done.stderr.splitlines()
    assert done.returncode == 1 and len(lines) == 2, done.stderr
    assert lines[0].startswith("Error: ") and words in lines[0] and "unexpected" not in lines[0], lines[0]
    assert lines[1].startswith("Try: free space"), lines[1]
    return lines[0]


def test_a_pull_that_runs_out_of_room_reports_a_full_disk_and_the_same_pull_finishes_it(s3, tmp_path):
    """Found by the chaos campaign: a full disk while downloading escaped as ``unexpected OSError``
    (writing the pull's state file) or was reported as an incomplete transfer with the errno buried
    in a list of objects; now it is a DiskFull naming the folder, and the same pull resumes."""
    bundle = small_remote_bundle(s3, tmp_path)
    out = tmp_path / "restore"
    url = f"{s3.url('p')}/{bundle.name}"
    line = full_disk_error(procos("snapshot", "pull", url, str(out), limit=200_000), "File too large")
    assert "is incomplete" not in line and str(out) in line
    assert [p.name for p in out.iterdir()] == [f".{bundle.name}.pull-partial"]  # hidden, kept for the next run
    done = procos("snapshot", "pull", url, str(out), "--json")
    assert done.returncode == 0, done.stderr
    assert [p.name for p in out.iterdir()] == [bundle.name] and '"verified": true' in done.stdout


def test_a_pulled_archive_that_cannot_be_unpacked_for_its_verification_is_a_full_disk(s3, tmp_path):
    """Found by the chaos campaign: the verification's unpack of a pulled .tar.zst filling the disk
    escaped as ``unexpected OSError: [Errno 28] No space left on device``."""
    import shutil

    import pytest

    bundle = small_remote_bundle(s3, tmp_path)
    archive = Path(f"{bundle}.tar.zst")
    disk = tmp_path / "disk"
    disk.mkdir()
    size = archive.stat().st_size * 3 // 2  # room for the download, not for the unpacked copy beside it
    if subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)],
                      capture_output=True).returncode != 0:
        pytest.skip("needs a tmpfs mount (root)")
    try:
        url = f"{s3.url('p')}/{archive.name}"
        full_disk_error(procos("snapshot", "pull", url, str(disk / "out")), "No space left on device")
        assert [p.name for p in (disk / "out").iterdir()] == [f".{archive.name}.pull-partial"]
        shutil.rmtree(disk / "out")
        assert procos("snapshot", "pull", url, str(tmp_path / "roomy")).returncode == 0  # the remote is intact
    finally:
        subprocess.run(["umount", str(disk)], check=False)
