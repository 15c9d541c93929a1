"""The README's walkthrough, run as written by a new user: in an empty folder, one `procos` call per
line (real subprocesses, the shell expanding the globs), default HNSW stores on both sides.

Its last step, ``procos validate``, must pass: the exact check proves the records are the same and
the import tuned the pgvector target's search effort to the recall floor. The same walkthrough is
run at 50,000 x 256 (slow: about a minute on a 2-core machine).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
SEED = "--count 5000 --dim 128"


def walkthrough() -> list[str]:
    """The command lines of the README's first bash block that starts with ``procos store seed``."""
    for block in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        lines = [line for line in block.splitlines() if line.strip()]
        if lines and lines[0].startswith("procos store seed faiss:./source"):
            return lines
    raise AssertionError("README has no walkthrough block starting with `procos store seed faiss:./source`")


def run_walkthrough(folder: Path, data: Path, seed_args: str = SEED) -> list[subprocess.CompletedProcess]:
    folder.mkdir()
    bin_dir = str(Path(sys.executable).parent)  # where `procos` is installed, as `. .venv/bin/activate` gives
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCOS_", "VECTOR_ENDPOINT"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", XDG_DATA_HOME=str(data), PROCOS_ENV="dev")
    runs = []
    for line in walkthrough():
        command = line.replace(SEED, seed_args) if line.startswith("procos store seed") else line
        assert SEED not in command or seed_args == SEED
        run = subprocess.run(["bash", "-c", command], cwd=folder, env=env, capture_output=True, text=True,
                             timeout=900)
        assert run.returncode == 0, f"`{command}` failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
        runs.append(run)
    return runs


def check_validation(runs: list[subprocess.CompletedProcess], folder: Path, data: Path) -> dict:
    imported = json.loads(runs[3].stdout)
    tuning = imported["search_tuning"]
    assert tuning["reached"] and tuning["recall"] >= 0.95, tuning
    result = json.loads(runs[-1].stdout)
    assert result["passed"], result["failures"]
    assert result["exact"]["passed"] and result["exact"]["mismatches"] == [] and result["mean_overlap"] == 1.0
    assert result["recall"]["rule"] == "floor" and result["recall"]["target"] >= 0.95
    assert result["sides"]["source"]["index"] == "hnsw" and result["sides"]["target"]["index"] == "hnsw"
    report = Path(result["report"])
    assert report.parent == data / "procos" / "reports" and report.read_text().startswith("# Validation: PASS")
    assert sorted(p.name for p in folder.iterdir()) == ["snapshots", "source", "target-pg"]
    return result


def test_the_walkthrough_block_is_one_copy_pasteable_block_of_procos_commands():
    lines = walkthrough()
    assert all(line.startswith("procos ") for line in lines)
    assert [line.split()[1:3] for line in lines] == [["store", "seed"], ["snapshot", "export"],
                                                      ["snapshot", "verify"], ["snapshot", "import"],
                                                      ["validate", "faiss:./source"]]
    assert SEED in lines[0]


def test_the_readme_walkthrough_passes_as_written(tmp_path):
    folder, data = tmp_path / "empty", tmp_path / "data"
    runs = run_walkthrough(folder, data)
    check_validation(runs, folder, data)


@pytest.mark.slow
def test_the_readme_walkthrough_passes_at_50000_x_256(tmp_path):
    folder, data = tmp_path / "empty", tmp_path / "data"
    runs = run_walkthrough(folder, data, "--count 50000 --dim 256")
    result = check_validation(runs, folder, data)
    assert result["checks"]["records"]["hash_checked"] == 50_000
