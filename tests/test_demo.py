"""`procos demo` plays the whole lift-and-shift playbook on embedded defaults, as a new user runs it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path


def procos(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCOS_", "VECTOR_ENDPOINT"))}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_demo_passes_and_keeps_everything_in_its_folder(tmp_path: Path):
    folder = tmp_path / "demo"
    run = procos("demo", "--dir", str(folder), "--count", "600", "--dim", "32", "--json", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout)
    assert report["passed"] is True and report["folder"] == str(folder)
    bundle = Path(report["bundle"])
    assert bundle.parent == folder / "snapshots" and (bundle / "checksums.sha256").is_file()
    assert report["records"] == {"source": 600, "exported": 600, "imported": 600}
    assert report["validation"]["passed"] and report["validation"]["mean_overlap"] == 1.0
    assert "index=" not in report["source"] and "index=" not in report["target"]  # the default (HNSW) stores
    assert report["drift"]["checked"] == 600 and report["drift"]["drifted"] == 0
    check = subprocess.run(["sha256sum", "-c", "--quiet", "checksums.sha256"], cwd=bundle)
    assert check.returncode == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["demo"]  # nothing outside its folder
    assert {"source", "target-pg", "snapshots", ".procos", "demo_report.json", "demo_report.md"} <= \
        {p.name for p in folder.iterdir()}
    events = [json.loads(line)["event"] for line in (folder / ".procos" / "events.jsonl").read_text().splitlines()]
    assert {"snapshot_exported", "import_ready", "validation_passed"} <= set(events)


def test_demo_plain_report_says_pass_and_refuses_a_used_folder(tmp_path: Path):
    run = procos("demo", "--count", "200", "--dim", "16", cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[0].endswith("PASS")
    made = [p for p in tmp_path.iterdir()]
    assert len(made) == 1 and made[0].name.startswith("procos-demo-")
    again = procos("demo", "--dir", str(made[0]), cwd=tmp_path)
    assert again.returncode != 0 and "not empty" in again.stderr and "Traceback" not in again.stderr
