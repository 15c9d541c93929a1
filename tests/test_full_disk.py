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
