"""Every user-facing failure of ``procos`` is exactly two lines on stderr: ``Error: ...`` and ``Try: ...``.

A set of commands that fail for different reasons (file system, libpq, bundles, stores, processes)
is run as a user runs them; each must print those two lines and nothing else (no traceback, no
second line of a libpq message), name what failed, and exit with its documented code. (Usage
errors found by click before a command runs keep click's own format, exit code 2.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("VECTOR_ENDPOINT", "PROCOS_TOKEN")}
    env["PROCOS_HOME"] = str(home)
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          cwd=ROOT, timeout=180)


@pytest.fixture(scope="module")
def world(tmp_path_factory, pg_server) -> dict:
    root = tmp_path_factory.mktemp("errors")
    home = root / "home"
    store = root / "store"
    assert run("store", "seed", f"faiss:{store}", "--count", "60", "--dim", "8", home=home).returncode == 0
    done = run("snapshot", "export", f"faiss:{store}", "--out", str(root / "snaps"), "--json", home=home)
    bundle = Path(__import__("json").loads(done.stdout)["path"])
    tampered = root / "tampered" / bundle.name
    shutil.copytree(bundle, tampered)
    (tampered / "prompts" / "extract_steps_v1.yaml").write_text("changed\n")
    (root / "a-file").write_text("not a folder")
    garbage = root / "knowledge_snapshot_20240101_000000.tar.zst"
    garbage.write_bytes(b"not an archive at all")
    packed = root / "packme" / bundle.name
    shutil.copytree(bundle, packed)
    (packed.parent / f"{bundle.name}.tar.zst").mkdir()  # a folder where the archive belongs
    paused = root / "paused"
    assert run("store", "seed", f"faiss:{paused}", "--count", "5", "--dim", "8", home=home).returncode == 0
    assert run("store", "pause", f"faiss:{paused}", home=home).returncode == 0
    socket = pg_server.datadir
    return {"root": root, "home": home, "store": f"faiss:{store}", "bundle": bundle, "tampered": tampered,
            "garbage": garbage, "packed": packed, "paused": f"faiss:{paused}",
            "pg_nodb": (f"postgresql://postgres@/no_such_db?host={socket}" if socket else None)}


CASES = {
    # name: (argv built from the world, exit code, text the Error line must contain)
    "export into /proc": (lambda w: ["snapshot", "export", w["store"], "--out", "/proc/x"], 1, "/proc/x"),
    "export under a file": (lambda w: ["snapshot", "export", w["store"], "--out", str(w["root"] / "a-file" / "s")],
                            1, "a-file"),
    "libpq refuses the connection": (lambda w: ["store", "stats", "postgresql://nobody@127.0.0.1:1/db"], 1,
                                     "127.0.0.1"),
    "libpq: no such database": (lambda w: ["store", "stats", w["pg_nodb"]], 1, "no_such_db"),
    "no such FAISS store": (lambda w: ["store", "stats", f"faiss:{w['root'] / 'nowhere'}"], 1, "nowhere"),
    "import a missing bundle": (lambda w: ["snapshot", "import", str(w["root"] / "gone"),
                                           f"faiss:{w['root'] / 't1'}"], 1, "gone"),
    "import a garbage archive": (lambda w: ["snapshot", "import", str(w["garbage"]), f"faiss:{w['root'] / 't2'}"],
                                 3, "knowledge_snapshot_20240101_000000.tar.zst"),
    "import a tampered bundle": (lambda w: ["snapshot", "import", str(w["tampered"]), f"faiss:{w['root'] / 't3'}"],
                                 3, "prompts/extract_steps_v1.yaml"),
    "import into /proc": (lambda w: ["snapshot", "import", str(w["bundle"]), "faiss:/proc/x/t"], 1, "/proc/x"),
    "pack onto a folder": (lambda w: ["snapshot", "pack", str(w["packed"])], 1, ".tar.zst"),
    "inspect a garbage archive": (lambda w: ["snapshot", "inspect", str(w["garbage"])], 1,
                                                   "knowledge_snapshot_20240101_000000.tar.zst"),
    "query an unknown id": (lambda w: ["store", "query", w["store"], "--id", "nope"], 1, "nope"),
    "write into a paused store": (lambda w: ["store", "seed", w["paused"], "--count", "1", "--dim", "8"], 75,
                                  "paused"),
    "delta on a base of another store": (
        lambda w: ["snapshot", "delta", w["paused"], "--base", str(w["bundle"]), "--out", str(w["root"] / "d")], 1,
        "store"),
    "validate against a missing store": (lambda w: ["validate", w["store"], f"faiss:{w['root'] / 'nowhere2'}"], 1,
                                         "nowhere2"),
    "show an unknown instance": (lambda w: ["instance", "show", "0123456789ab"], 1, "0123456789ab"),
    "migrate a current bundle": (lambda w: ["snapshot", "migrate", str(w["bundle"]), "--out",
                                            str(w["root"] / "m")], 1, "knowledge_snapshot_"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_failing_command_prints_one_error_line_and_one_try_line(world, case):
    build, code, named = CASES[case]
    argv = build(world)
    if None in argv:
        pytest.skip("needs the embedded PostgreSQL server's socket folder")
    done = run(*argv, home=world["home"])
    lines = done.stderr.splitlines()
    assert done.returncode == code, f"{argv} -> {done.returncode}\n{done.stderr}"
    assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Try: "), done.stderr
    assert "Traceback" not in done.stderr and "unexpected" not in lines[0], done.stderr
    assert named in lines[0], lines[0]
    assert len(lines[1]) > len("Try: ") + 10
    assert done.stdout == ""
    print(f"{case}:\n  {lines[0]}\n  {lines[1]}")


def test_debug_adds_the_traceback(world):
    done = run("--debug", "snapshot", "export", world["store"], "--out", "/proc/x", home=world["home"])
    assert done.returncode == 1 and "Traceback" in done.stderr
    assert done.stderr.splitlines()[-2].startswith("Error: ") and done.stderr.splitlines()[-1].startswith("Try: ")


def test_report_error_joins_multi_line_messages_and_always_gives_a_try_line(capsys):
    import psycopg

    from engine.cli import report_error
    from engine.errors import BundleInvalid, StoreError

    cases = [StoreError('FATAL:  role "x" does not exist\nDETAIL:  more\n', hint="check\nthe role"),
             BundleInvalid("bad bundle"), psycopg.OperationalError("server closed the connection\n\tunexpectedly\n"),
             RuntimeError("")]
    for err in cases:
        report_error(err, debug=False)
        lines = capsys.readouterr().err.splitlines()
        assert len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Try: "), lines
        assert "  " not in lines[0] and len(lines[1]) > 10
    report_error(cases[0], debug=False)
    assert capsys.readouterr().err.splitlines()[0] == 'Error: FATAL: role "x" does not exist DETAIL: more'
