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


def block(first: str) -> list[str]:
    """The lines of the README's first bash block whose first line starts with ``first``."""
    for text in re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.S):
        lines = [line for line in text.splitlines() if line.strip()]
        if lines and lines[0].startswith(first):
            return lines
    raise AssertionError(f"README has no bash block starting with {first!r}")


def walkthrough() -> list[str]:
    """The sandbox walkthrough: ``export PROCOS_ENV=dev``, then one ``procos`` command per line."""
    return block("export PROCOS_ENV=dev")


def run_lines(lines: list[str], folder: Path, data: Path, seed_args: str = SEED) -> list[subprocess.CompletedProcess]:
    """Run each line as a user would type it into one shell: ``export``/``unset`` lines hold for the rest.

    The environment is the user's: no PROCOS_* variable set (so unset means prod), the per-user state
    in ``data`` (XDG_DATA_HOME), ``procos`` on the PATH as ``. .venv/bin/activate`` puts it. Returns the
    runs of the other lines.
    """
    folder.mkdir()
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PROCOS_", "VECTOR_ENDPOINT", "GNUPGHOME"))}
    env.update(PATH=f"{bin_dir}{os.pathsep}{env.get('PATH', '')}", XDG_DATA_HOME=str(data))
    sticky: list[str] = []
    runs = []
    for line in lines:
        command = line.replace(SEED, seed_args) if line.startswith("procos store seed") else line
        if line.startswith(("export ", "unset ")):
            sticky.append(command)
            continue
        script = "\n".join(["set -e", *sticky, command])
        run = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                             timeout=900)
        assert run.returncode == 0, f"`{command}` failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
        runs.append(run)
    return runs


def run_walkthrough(folder: Path, data: Path, seed_args: str = SEED) -> list[subprocess.CompletedProcess]:
    return run_lines(walkthrough(), folder, data, seed_args)


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
    lines = walkthrough()[1:]
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


def test_the_production_block_runs_as_written(tmp_path):
    """Prod: users with tokens, a signing key, an export and an import each approved by another person."""
    import shutil

    if shutil.which("gpg") is None:
        pytest.skip("needs gpg")
    folder, data = tmp_path / "prod", tmp_path / "data"
    lines = block("unset PROCOS_ENV")
    runs = run_lines(lines, folder, data)
    said = {line: run.stdout for line, run in zip([x for x in lines if not x.startswith(("export", "unset"))], runs,
                                                  strict=True)}
    starts = [out for line, out in said.items() if " process start " in line]
    assert len(starts) == 2 and all(": waiting" in out for out in starts)  # prod: both wait for an approver
    decided = [out for line, out in said.items() if " task complete " in line]
    assert len(decided) == 2 and all("completed (succeeded)" in out for out in decided), decided
    assert runs[-1].stdout.startswith("PASS"), runs[-1].stdout
    bundle = next((folder / "snapshots").glob("knowledge_snapshot_*/"))
    assert (bundle / "checksums.sha256.asc").is_file()
    assert sorted(p.name for p in folder.glob("*.token")) == ["admin.token", "alice.token", "bob.token"]
    assert all(oct(p.stat().st_mode)[-3:] == "600" for p in folder.glob("*.token"))
