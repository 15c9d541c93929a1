"""The ``procos`` CLI as a user runs it: real subprocesses, real FAISS and PostgreSQL stores."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from engine.synthetic import synthetic_batches

COUNT, DIM = 300, 16
STATS_KEYS = {"backend", "count", "dimensions", "metric", "index", "paused", "sequence"}
HEAVY = ("faiss", "pyarrow", "psycopg", "numpy")


def procos(*args: str, env: dict[str, str] | None = None, cwd=None) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, cwd=cwd, timeout=120)


def ok_json(*args: str, **kw) -> dict:
    proc = procos(*args, "--json", **kw)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def record_vector(i: int) -> np.ndarray:
    """The vector of synthetic record ``i`` (0-based) of the seeded store."""
    batch = next(synthetic_batches(COUNT, DIM, seed=0, batch_size=COUNT))
    return batch.vectors[i]


@pytest.fixture(scope="module")
def faiss_store(tmp_path_factory) -> str:
    uri = f"faiss:{tmp_path_factory.mktemp('cli') / 'store'}?index=flat"
    result = ok_json("store", "seed", uri, "--count", str(COUNT), "--dim", str(DIM))
    assert result["written"] == COUNT and result["count"] == COUNT and result["artifacts"] == 10
    return uri


# --- help and start-up ---------------------------------------------------------------------------

@pytest.mark.parametrize("command", [[], ["store"], ["store", "seed"], ["store", "stats"],
                                     ["store", "query"], ["store", "pause"], ["store", "resume"]])
def test_every_command_has_help(command):
    proc = procos(*command, "--help")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("Usage: ") and not proc.stderr


def test_help_does_not_import_heavy_libraries():
    code = ("import sys\nfrom engine.cli import main\n"
            "try:\n    main(['store', 'query', '--help'])\nexcept SystemExit:\n    pass\n"
            f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


# --- seed, stats, query on FAISS -----------------------------------------------------------------

def test_stats_reports_the_seeded_store(faiss_store):
    stats = ok_json("store", "stats", faiss_store)
    assert STATS_KEYS <= set(stats)
    assert stats["backend"] == "faiss" and stats["count"] == COUNT and stats["dimensions"] == DIM
    assert stats["metric"] == "cosine" and stats["index"] == "flat" and stats["paused"] is False
    assert stats["sequence"] > 0


def test_stats_prints_readable_text_without_json(faiss_store):
    proc = procos("store", "stats", faiss_store)
    assert proc.returncode == 0, proc.stderr
    assert "count" in proc.stdout and str(COUNT) in proc.stdout and "{" not in proc.stdout


def test_query_by_id_finds_the_record_itself_first(faiss_store):
    hits = ok_json("store", "query", faiss_store, "--id", "rec-0000042", "-k", "5")["hits"]
    assert len(hits) == 5 and set(hits[0]) == {"id", "score", "metadata"}
    assert hits[0]["id"] == "rec-0000042" and abs(hits[0]["score"]) < 1e-5
    assert [h["score"] for h in hits] == sorted(h["score"] for h in hits)
    assert set(hits[0]["metadata"]) == {"doc", "lang", "tier", "topic"}


@pytest.mark.parametrize("suffix", [".npy", ".json"])
def test_query_by_vector_file(faiss_store, tmp_path, suffix):
    path = tmp_path / f"q{suffix}"
    vec = record_vector(6)
    if suffix == ".npy":
        np.save(path, vec)
    else:
        path.write_text(json.dumps([float(x) for x in vec]))
    hits = ok_json("store", "query", faiss_store, "--vector-file", str(path), "-k", "3")["hits"]
    assert [h["id"] for h in hits][0] == "rec-0000007" and len(hits) == 3


def test_query_with_filter_returns_only_matching_records(faiss_store):
    flt = json.dumps({"lang": {"$in": ["en", "de"]}, "tier": 2})
    hits = ok_json("store", "query", faiss_store, "--id", "rec-0000001", "-k", "20", "--filter", flt)["hits"]
    assert hits and all(h["metadata"]["lang"] in ("en", "de") and h["metadata"]["tier"] == 2 for h in hits)


def test_query_prints_a_table_without_json(faiss_store):
    proc = procos("store", "query", faiss_store, "--id", "rec-0000003", "-k", "2")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0].startswith("rec-0000003 ")


def test_uri_defaults_to_vector_endpoint(faiss_store):
    stats = ok_json("store", "stats", env={"VECTOR_ENDPOINT": faiss_store})
    assert stats["count"] == COUNT


# --- failures ------------------------------------------------------------------------------------

def assert_one_line_error(proc: subprocess.CompletedProcess, *needles: str, code: int = 1) -> None:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and "Traceback" not in proc.stderr
    assert all(line.startswith("Try: ") for line in lines[1:]), proc.stderr
    for needle in needles:
        assert needle in lines[0]


def test_unknown_id_is_one_clear_line(faiss_store):
    proc = procos("store", "query", faiss_store, "--id", "rec-nope", "--json")
    assert_one_line_error(proc, "rec-nope")
    assert proc.stdout == ""


def test_debug_shows_the_traceback(faiss_store):
    proc = procos("--debug", "store", "query", faiss_store, "--id", "rec-nope")
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "RecordNotFound" in proc.stderr
    assert "Error: " in proc.stderr and "rec-nope" in proc.stderr


def test_bad_uri_is_a_clear_error():
    assert_one_line_error(procos("store", "stats", "mongodb://x/y"), "unknown store URI")


def test_missing_uri_without_vector_endpoint_names_the_variable():
    assert_one_line_error(procos("store", "stats"), "VECTOR_ENDPOINT")


def test_bad_vector_files_are_named(faiss_store, tmp_path):
    missing = tmp_path / "missing.npy"
    assert_one_line_error(procos("store", "query", faiss_store, "--vector-file", str(missing)), "missing.npy")
    garbage = tmp_path / "garbage.json"
    garbage.write_text("{not json")
    assert_one_line_error(procos("store", "query", faiss_store, "--vector-file", str(garbage)), "garbage.json")
    short = tmp_path / "short.json"
    short.write_text("[1.0, 2.0]")
    assert_one_line_error(procos("store", "query", faiss_store, "--vector-file", str(short)), "dimensional")


def test_bad_filter_is_a_clear_error(faiss_store):
    assert_one_line_error(procos("store", "query", faiss_store, "--id", "rec-0000001", "--filter", "{x"),
                          "--filter")


def test_id_and_vector_file_are_exclusive(faiss_store):
    proc = procos("store", "query", faiss_store)
    assert proc.returncode == 2 and "exactly one of --id and --vector-file" in proc.stderr


def test_seed_into_paused_store_is_refused_until_resumed(tmp_path):
    uri = f"faiss:{tmp_path / 'paused'}"
    ok_json("store", "seed", uri, "--count", "10", "--dim", "4", "--no-artifacts")
    assert procos("store", "pause", uri).returncode == 0
    assert ok_json("store", "stats", uri)["paused"] is True
    proc = procos("store", "seed", uri, "--count", "20", "--dim", "4")
    assert_one_line_error(proc, "paused", code=75)
    assert ok_json("store", "stats", uri)["count"] == 10
    assert procos("store", "resume", uri).returncode == 0
    assert ok_json("store", "seed", uri, "--count", "20", "--dim", "4")["count"] == 20


def test_seed_with_other_dimensions_is_refused(tmp_path):
    uri = f"faiss:{tmp_path / 'dims'}"
    ok_json("store", "seed", uri, "--count", "5", "--dim", "4", "--no-artifacts")
    assert_one_line_error(procos("store", "seed", uri, "--count", "5", "--dim", "8"), "dimensions")


# --- PostgreSQL (embedded pgserver + pgvector) ---------------------------------------------------

@pytest.fixture
def pg_datadir_outside_pytest() -> Iterator[Path]:
    """A data directory outside /tmp/pytest-of-<user>: pytest resets that folder to mode 0700 at the
    start of every session, which would lock the ``pgserver`` system user out mid-test whenever
    another pytest session starts in parallel."""
    root = Path(tempfile.mkdtemp(prefix="procos-test-cli-"))
    yield root / "pg"
    shutil.rmtree(root, ignore_errors=True)  # each CLI process stopped the server when it exited


def test_seed_stats_query_on_embedded_postgresql(pg_datadir_outside_pytest):
    uri = f"postgresql+embedded:{pg_datadir_outside_pytest}?index=flat"
    seeded = ok_json("store", "seed", uri, "--count", str(COUNT), "--dim", str(DIM))
    assert seeded["count"] == COUNT and seeded["backend"] == "pgvector"
    stats = ok_json("store", "stats", uri)
    assert STATS_KEYS <= set(stats) and stats["count"] == COUNT and stats["dimensions"] == DIM
    hits = ok_json("store", "query", uri, "--id", "rec-0000042", "-k", "3")["hits"]
    assert hits[0]["id"] == "rec-0000042" and abs(hits[0]["score"]) < 1e-5


# --- the library function behind --vector-file ---------------------------------------------------

def test_load_query_vector_reads_npy_and_json(tmp_path):
    from engine.api import load_query_vector

    np.save(tmp_path / "v.npy", np.array([[1.0, 2.0, 3.0]], dtype=np.float64))
    (tmp_path / "v.json").write_text("[1, 2.5, -3]")
    assert load_query_vector(tmp_path / "v.npy").tolist() == [1.0, 2.0, 3.0]
    vec = load_query_vector(tmp_path / "v.json")
    assert vec.dtype == np.float32 and vec.tolist() == [1.0, 2.5, -3.0]


@pytest.mark.parametrize("content", ['{"a": 1}', '["x"]', "[]", "[[1, 2], [3, 4]]", "[1, NaN]", "not json"])
def test_load_query_vector_refuses_non_vectors_naming_the_file(tmp_path, content):
    from engine.api import load_query_vector
    from engine.errors import InvalidInput

    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(InvalidInput, match="bad.json"):
        load_query_vector(path)
