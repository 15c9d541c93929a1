"""Validation: a faithful import passes; a lost record, a perturbed vector, a changed artifact or a
different metric fails and names what failed. Real FAISS and PostgreSQL stores, real bundles."""

from __future__ import annotations

import dataclasses
import json
import os
import stat
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from reference import with_options

from engine import api
from engine.cli import cli
from engine.repository import open_repository
from engine.validation import DEFAULT_QUERIES

COUNT, DIM = 300, 16


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> dict:
    """A seeded FAISS flat store (cosine) and its exported bundle."""
    base = tmp_path_factory.mktemp("validation-source")
    uri = f"faiss:{base / 'store'}?index=flat"
    api.seed_store(uri, COUNT, DIM, seed=0)
    bundle = api.export_snapshot(uri, base / "snapshots")["path"]
    return {"uri": uri, "bundle": bundle, "base": base}


def pg_uri(pg_server) -> str:
    table = f"t_{uuid.uuid4().hex[:12]}"
    if pg_server.datadir is None:
        return with_options(pg_server.dsn, table=table)
    return f"postgresql+embedded:{pg_server.datadir}?table={table}"


def imported(source: dict, uri: str) -> str:
    result = api.import_snapshot(source["bundle"], uri)
    assert result["imported"] == COUNT
    return uri


def faiss_target(source: dict, tmp_path: Path, index: str = "flat") -> str:
    return imported(source, f"faiss:{tmp_path / 'target'}?index={index}")


def failures_by_check(result: dict) -> dict[str, dict]:
    return {f["check"]: f for f in result["failures"]}


def run_cli(*args: str) -> tuple[int, dict]:
    out = CliRunner().invoke(cli, [*args, "--json"])
    return out.exit_code, json.loads(out.stdout)


# --- faithful imports pass -------------------------------------------------------------------------

def test_faithful_import_into_pgvector_passes_with_full_overlap(source, pg_server, tmp_path):
    target = imported(source, pg_uri(pg_server))
    report = tmp_path / "report.md"
    result = api.validate(source["uri"], target, report_path=report)
    assert result["passed"], result["failures"]
    assert result["failures"] == [] and result["queries"] == DEFAULT_QUERIES and result["mean_overlap"] == 1.0
    assert result["checks"]["records"]["hash_checked"] == COUNT
    assert result["checks"]["artifacts"] == {"source": 10, "target": 10, "missing": 0, "unexpected": 0,
                                             "changed": 0}
    assert result["exact"] == {"passed": True, "queries": DEFAULT_QUERIES, "k": 10, "mismatches": [], "mismatched": 0,
                               "min_overlap": 1.0, "score_tolerance": result["exact"]["score_tolerance"]}
    assert result["recall"]["rule"] == "floor" and result["recall"]["floor"] == 0.95 and result["recall"]["passed"]
    assert result["recall"]["source"] == 1.0 and result["recall"]["target"] >= 0.95  # flat source: exact
    assert len(result["per_query"]) == DEFAULT_QUERIES and all(row["exact_match"] for row in result["per_query"])
    text = report.read_text()
    assert text.startswith("# Validation: PASS") and "None." in text


def test_faithful_import_into_faiss_flat_passes_through_the_cli(source, tmp_path):
    target = faiss_target(source, tmp_path)
    report = tmp_path / "out" / "validation.md"
    code, result = run_cli("validate", source["uri"], target, "--queries", "12", "-k", "5",
                           "--report", str(report))
    assert code == 0, result
    assert result["passed"] is True and result["failures"] == []
    assert result["queries"] == 12 and result["mean_overlap"] == 1.0
    assert result["report"] == str(report) and "PASS" in report.read_text()


def test_a_bundle_and_its_archive_work_as_the_source(source, tmp_path):
    target = faiss_target(source, tmp_path)
    assert api.validate(source["bundle"], target)["passed"]
    archive = api.pack_snapshot(source["bundle"])["archive"]
    result = api.validate(archive, target, queries=6)
    assert result["passed"], result["failures"]
    assert result["source"] == archive


def test_a_tampered_bundle_is_refused_as_a_side(source, tmp_path):
    import shutil

    from engine.errors import BundleInvalid

    bundle = tmp_path / "copy"
    shutil.copytree(source["bundle"], bundle)
    path = bundle / "bpmn" / "invoice_approval_v1.bpmn"
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(BundleInvalid, match="nothing was validated"):
        api.validate(str(bundle), source["uri"])


# --- each kind of damage fails and names what failed -------------------------------------------------

def test_a_lost_record_fails_naming_the_id(source, tmp_path):
    target = faiss_target(source, tmp_path)
    repo = open_repository(target)
    assert repo.delete(["rec-0000042"]) == 1
    repo.close()
    result = api.validate(source["uri"], target, queries=4)
    assert not result["passed"]
    failed = failures_by_check(result)
    assert failed["ids_missing"]["ids"] == ["rec-0000042"]
    assert "count" in failed and "vector_hash" not in failed and "ids_unexpected" not in failed


def test_one_perturbed_vector_fails_naming_the_id(source, tmp_path):
    target = faiss_target(source, tmp_path)
    repo = open_repository(target)
    [record] = repo.fetch(["rec-0000123"])
    repo.upsert([dataclasses.replace(record, vector=record.vector + np.float32(1e-3))])  # same version
    repo.close()
    report = tmp_path / "report.md"
    code, result = run_cli("validate", source["uri"], target, "--report", str(report))
    assert code == 4 and not result["passed"]  # a check failed
    failed = failures_by_check(result)
    assert failed["vector_hash"]["ids"] == ["rec-0000123"]
    assert "ids_missing" not in failed and "record_content" not in failed and "count" not in failed
    text = report.read_text()
    assert text.startswith("# Validation: FAIL") and "vector_hash" in text and "rec-0000123" in text


def test_a_changed_artifact_fails_naming_the_file(source, tmp_path):
    target = faiss_target(source, tmp_path)
    path = "bpmn/invoice_approval_v1.bpmn"
    repo = open_repository(target)
    xml = repo.artifacts.read(path)
    repo.artifacts.write(path, xml.replace(b"</bpmn:definitions>", b"<!-- edited --></bpmn:definitions>")
                         if b"</bpmn:definitions>" in xml else xml + b"\n<!-- edited -->")
    repo.close()
    result = api.validate(source["bundle"], target, queries=4)
    assert not result["passed"]
    failed = failures_by_check(result)
    assert list(failed) == ["artifact_checksum"]
    assert failed["artifact_checksum"]["files"] == [path]


def test_a_different_metric_fails_naming_the_metric(source, tmp_path):
    target = f"faiss:{tmp_path / 'l2'}?index=flat&metric=l2"
    api.seed_store(target, COUNT, DIM, seed=0)  # the same records and artifacts, another metric
    result = api.validate(source["uri"], target, queries=4)
    assert not result["passed"]
    failed = failures_by_check(result)
    assert list(failed) == ["metric"]
    assert failed["metric"]["setting"] == "metric" and "l2" in failed["metric"]["message"]


# --- sampling and thresholds -------------------------------------------------------------------------

def test_sample_checks_exactly_n_hashes(source, tmp_path):
    target = faiss_target(source, tmp_path)
    result = api.validate(source["uri"], target, sample=25, queries=4)
    assert result["passed"] and result["checks"]["records"]["hash_checked"] == 25
    code, cli_result = run_cli("validate", source["uri"], target, "--sample", "7", "--queries", "2",
                               "--report", str(tmp_path / "r.md"))
    assert code == 0 and cli_result["checks"]["records"]["hash_checked"] == 7


def test_sampling_every_record_still_finds_a_perturbed_vector(source, tmp_path):
    target = faiss_target(source, tmp_path)
    repo = open_repository(target)
    [record] = repo.fetch(["rec-0000300"])
    repo.upsert([dataclasses.replace(record, vector=-record.vector)])
    repo.close()
    result = api.validate(source["uri"], target, sample=COUNT, queries=0)
    assert failures_by_check(result)["vector_hash"]["ids"] == ["rec-0000300"]



# --- the recall rules ------------------------------------------------------------------------------

def test_an_hnsw_target_is_judged_by_its_recall_against_its_own_exact_answers(source, tmp_path):
    target = faiss_target(source, tmp_path, index="hnsw")
    result = api.validate(source["uri"], target, queries=10)
    assert result["passed"], result["failures"]
    recall = result["recall"]
    assert recall["rule"] == "floor" and recall["floor"] == 0.95 and recall["k"] == 10 and recall["passed"]
    assert recall["source"] == 1.0  # a flat source serves exact answers
    assert recall["target"] == pytest.approx(np.mean([r["target_recall"] for r in result["per_query"]]))
    assert result["sides"]["target"]["index"] == "hnsw" and result["sides"]["target"]["ef_search"] == 40


def test_recall_vs_source_rule_is_applied_and_named(source, tmp_path):
    target = faiss_target(source, tmp_path, index="hnsw")
    report = tmp_path / "r.md"
    code, result = run_cli("validate", source["uri"], target, "--recall-vs-source", "0.5", "--report", str(report))
    assert code == 0, result["failures"]
    recall = result["recall"]
    assert recall["rule"] == "vs_source" and recall["tolerance"] == 0.5
    assert recall["floor"] == pytest.approx(recall["source"] - 0.5)
    assert "vs_source: target recall >= source recall - 0.5" in report.read_text()
    code, strict = run_cli("validate", source["uri"], target, "--recall-floor", "1.0", "--report", str(report))
    assert strict["recall"]["rule"] == "floor" and strict["recall"]["floor"] == 1.0
    assert (code == 0) is (strict["recall"]["target"] == 1.0)


def test_recall_floor_and_recall_vs_source_together_are_a_usage_error(source, tmp_path):
    out = CliRunner().invoke(cli, ["validate", source["uri"], source["uri"], "--recall-floor", "0.9",
                                   "--recall-vs-source", "0.1", "--report", str(tmp_path / "r.md")])
    assert out.exit_code == 2 and "not both" in out.output
    assert not (tmp_path / "r.md").exists()


# --- queries ---------------------------------------------------------------------------------------

def test_queries_come_from_stored_and_perturbed_vectors_reproducibly(source):
    from engine.validation.queryset import Reservoir, draw_queries

    repo = open_repository(source["uri"], create=False)
    try:
        stored = np.concatenate([b.vectors for b in repo.iter_batches()])

        def drawn(seed: int):
            rng = np.random.default_rng(seed)
            pool = Reservoir(12, rng)
            pool.offer_batches(repo.iter_batches(64))
            return draw_queries(pool.array(DIM), 12, "cosine", rng)

        first, again, other = drawn(3), drawn(3), drawn(4)
        assert np.array_equal(first.vectors, again.vectors) and not np.array_equal(first.vectors, other.vectors)
        assert first.kinds == ["stored"] * 6 + ["perturbed"] * 6 and first.vectors.dtype == np.float32
        for q in first.vectors[:6]:  # stored vectors exactly as stored
            assert (stored == q).all(axis=1).any()
        unit = stored / np.linalg.norm(stored, axis=1, keepdims=True)
        for q in first.vectors[6:]:  # near a stored vector, but none of them; unit length for cosine
            assert not (stored == q).all(axis=1).any()
            assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-5)
            assert 1 - (unit @ q).max() < 0.05
    finally:
        repo.close()


def test_a_queries_file_adds_the_users_queries(source, tmp_path):
    target = faiss_target(source, tmp_path, index="hnsw")
    traffic = np.random.default_rng(9).standard_normal((5, DIM)).astype(np.float32)
    path = tmp_path / "traffic.npy"
    np.save(path, traffic)
    code, result = run_cli("validate", source["uri"], target, "--queries", "4", "--queries-file", str(path),
                           "--report", str(tmp_path / "r.md"))
    assert code == 0, result["failures"]
    assert result["queries"] == 9 and result["checks"]["queries"]["kinds"] == {"stored": 2, "perturbed": 2, "file": 5}
    assert [r["kind"] for r in result["per_query"]] == ["stored"] * 2 + ["perturbed"] * 2 + ["file"] * 5
    only_file = api.validate(source["uri"], target, queries=0, queries_file=path)
    assert only_file["exact"]["queries"] == 5 and only_file["passed"]


@pytest.mark.parametrize("content, problem", [
    (np.ones((3, DIM + 1), np.float32), "expected (n, 16)"),
    (np.ones(DIM, np.float32), "expected (n, 16)"),
    (np.array([[np.nan] * DIM], np.float32), "NaN"),
    (np.zeros((2, DIM), np.float32), "all zeros"),
    (np.ones((2, DIM), np.int64), "int64"),
], ids=["wrong-dims", "one-dimensional", "nan", "zero-rows", "integers"])
def test_an_unusable_queries_file_is_one_error_line_with_a_hint(source, tmp_path, content, problem):
    path = tmp_path / "q.npy"
    np.save(path, content)
    out = CliRunner().invoke(cli, ["validate", source["uri"], source["uri"], "--queries-file", str(path),
                                   "--report", str(tmp_path / "r.md")])
    assert out.exit_code == 1, out.output  # an error (unusable input), not a failed check
    assert problem in out.output and "Traceback" not in out.output and "Try:" in out.output
    assert not (tmp_path / "r.md").exists()


# --- the report ------------------------------------------------------------------------------------

def procos_cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PROCOS_HOME": str(home)}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


def test_the_report_goes_under_procos_home_never_into_the_current_folder(source, tmp_path):
    cwd, home = tmp_path / "here", tmp_path / "home"
    cwd.mkdir()
    run = procos_cli("validate", source["uri"], source["bundle"], "--queries", "4", "--json", cwd=cwd, home=home)
    assert run.returncode == 0, run.stderr
    path = Path(json.loads(run.stdout)["report"])
    assert path.parent == home / "reports" and path.name.startswith("validation_") and path.suffix == ".md"
    assert path.is_file() and stat.S_IMODE((home / "reports").stat().st_mode) == 0o700
    assert list(cwd.iterdir()) == []
    plain = procos_cli("validate", source["uri"], source["bundle"], "--queries", "4", cwd=cwd, home=home)
    assert plain.returncode == 0 and f"report: {home / 'reports'}" in plain.stdout
    assert len(list((home / "reports").iterdir())) == 2 and list(cwd.iterdir()) == []
    chosen = tmp_path / "chosen" / "v.md"
    run = procos_cli("validate", source["uri"], source["bundle"], "--queries", "4", "--report", str(chosen), "--json",
                     cwd=cwd, home=home)
    assert json.loads(run.stdout)["report"] == str(chosen) and chosen.is_file()
    assert len(list((home / "reports").iterdir())) == 2


def test_the_report_has_a_summary_and_tables_not_json(source, tmp_path):
    target = faiss_target(source, tmp_path)
    repo = open_repository(target)
    [record] = repo.fetch(["rec-0000007"])
    repo.upsert([dataclasses.replace(record, vector=record.vector * np.float32(-1))])  # one record differs
    repo.close()
    report = tmp_path / "report.md"
    result = api.validate(source["uri"], target, queries=6, k=5, report_path=report)
    text = report.read_text()
    lines = text.splitlines()
    assert lines[0] == "# Validation: FAIL" and "**FAIL**, because:" in text
    assert "- **vector_hash**: 1 record(s) have different vector bytes" in text
    assert "Recall rule applied: floor: target recall >= 0.95" in text
    for heading in ("## Records, hashes and artifacts", "## Exact check (equivalence of data)",
                    "## Recall@5 (served answers against exact answers)", "## Per query", "## Failures"):
        assert heading in lines
    assert "| query # | kind | exact match | overlap | source recall | target recall |" in lines
    start = lines.index("## Per query") + 4
    rows = lines[start:start + 6]
    assert [row.split(" | ")[1] for row in rows] == ["stored"] * 3 + ["perturbed"] * 3
    assert "| vector hashes checked / differing | 300 | 1 | no |" in lines
    assert "{" not in text and "}" not in text, "the report must not hold JSON"
    assert not result["passed"]
