"""Progress of long operations on the CLI: ``--progress json`` writes one JSON object per update to stderr
with the documented keys, for export, verify, import, validate and drift; without a terminal the
default (``auto``) prints no progress at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

KEYS = {"op", "done", "total", "unit", "rate", "eta_seconds"}


def procos(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROCOS_ENV": "dev"}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


def updates(stderr: str) -> list[dict]:
    out = []
    for line in stderr.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))
    return out


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("progress")
    seeded = procos("store", "seed", "faiss:./src?index=flat", "--count", "3000", "--dim", "8", "--no-artifacts",
                    cwd=root)
    assert seeded.returncode == 0, seeded.stderr
    return root


def test_progress_json_reports_every_long_step_with_the_documented_keys(folder):
    exported = procos("snapshot", "export", "faiss:./src", "--out", "snaps", "--jobs", "2", "--progress", "json",
                      "--json", cwd=folder)
    assert exported.returncode == 0, exported.stderr
    bundle = json.loads(exported.stdout)["path"]
    steps = {"export": updates(exported.stderr)}
    for name, args in (("verify", ["snapshot", "verify", bundle]),
                       ("import", ["snapshot", "import", bundle, "faiss:./dst?index=flat"]),
                       ("validate", ["validate", "faiss:./src", "faiss:./dst", "--queries", "4"]),
                       ("drift", ["drift", "check", "faiss:./dst", "--snapshot", bundle, "--all"])):
        done = procos(*args, "--progress", "json", cwd=folder)
        assert done.returncode == 0, done.stderr
        steps[name] = updates(done.stderr)
    for name, got in steps.items():
        assert got, f"{name} reported no progress"
        assert all(set(u) == KEYS for u in got), got
        mine = [u for u in got if u["op"] == name]
        assert mine, f"{name}: no update of op {name!r} in {[u['op'] for u in got]}"
        assert mine[-1]["done"] == mine[-1]["total"] == 3000
        assert all(u["unit"] == "rows" for u in mine)
        assert all(a["done"] <= b["done"] for a, b in zip(mine, mine[1:], strict=False))
    assert any(u["op"] == "checksums" and u["unit"] == "bytes" for u in steps["verify"])


def test_progress_is_silent_without_a_terminal_by_default(folder):
    exported = procos("snapshot", "export", "faiss:./src", "--out", "snaps2", "--json", cwd=folder)
    assert exported.returncode == 0, exported.stderr
    assert not updates(exported.stderr)
    assert "export" not in exported.stderr and "rows/s" not in exported.stderr


def test_a_terminal_gets_a_progress_bar_with_rate_and_eta_and_the_result_after_it(folder):
    import pty

    master, slave = pty.openpty()
    env = {**os.environ, "PROCOS_ENV": "dev", "COLUMNS": "150", "TERM": "xterm"}
    run = subprocess.Popen([sys.executable, "-m", "engine.cli", "snapshot", "export", "faiss:./src", "--out", "snaps3",
                            "--json"], cwd=folder, env=env, stdout=subprocess.PIPE, stderr=slave, text=True)
    os.close(slave)
    shown = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        shown += chunk
    out, _ = run.communicate(timeout=300)
    os.close(master)
    assert run.returncode == 0
    screen = shown.decode(errors="replace")
    assert "export" in screen and "rows/s" in screen and "ETA" in screen and "3,000/3,000 rows" in screen
    assert json.loads(out)["record_count"] == 3000  # stdout, held back while the bar ran, is intact
