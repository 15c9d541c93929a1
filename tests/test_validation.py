"""Validation: a faithful import passes; a lost record, a perturbed vector, a changed artifact or a
different metric fails and names what failed. Real FAISS and PostgreSQL stores, real bundles."""

from __future__ import annotations

import dataclasses
import json
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from reference import with_options

from engine import api
from engine.cli import cli
from engine.repository import Hit, open_repository
from engine.validation import Validation
from engine.validation.queries import compare_queries
from engine.validation.sides import Side

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
    assert result["failures"] == [] and result["queries"] == 20 and result["mean_overlap"] == 1.0
    assert result["checks"]["records"]["hash_checked"] == COUNT
    assert result["checks"]["artifacts"] == {"source": 10, "target": 10, "missing": 0, "unexpected": 0,
                                             "changed": 0}
    assert result["checks"]["queries"]["exact"] and result["checks"]["queries"]["threshold"] == 1.0
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
    assert code == 1 and not result["passed"]
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


def test_an_approximate_target_is_judged_by_the_recall_floor(source, tmp_path):
    target = faiss_target(source, tmp_path, index="hnsw")
    result = api.validate(source["uri"], target, queries=10)
    assert result["passed"], result["failures"]
    assert result["checks"]["queries"]["exact"] is False and result["checks"]["queries"]["threshold"] == 0.95


def _side(name: str, exact: bool, answers: list[list[str]], scores: dict[str, float] | None = None) -> Side:
    """A side whose i-th query returns the ids ``answers[i]`` scored 0.1 * rank (unless ``scores`` says)."""
    def search(queries, k):
        return [[Hit(rid, (scores or {}).get(rid, 0.1 * rank), {}) for rank, rid in enumerate(answers[i][:k])]
                for i in range(len(queries))]

    return Side(name=name, count=100, dimensions=4, metric="l2", exact=exact, artifacts={},
                batches=lambda: iter(()), search=search)


@pytest.mark.parametrize("exact, passes", [(True, False), (False, True)])
def test_exact_indexes_need_full_overlap_approximate_ones_a_recall_floor(exact, passes):
    n, k = 20, 10
    expected = [[f"r{q}-{i}" for i in range(k)] for q in range(n)]
    got = [list(row) for row in expected]
    got[3][9] = "someone-else"  # one query misses one of ten (not a tie): mean overlap 0.995
    result = Validation(source="s", target="t")
    pool = np.zeros((0, 4), np.float32)
    compare_queries(_side("s", True, expected), _side("t", exact, got, {"someone-else": 0.85}), pool, n, k, None,
                    np.random.default_rng(0), result)
    assert result.mean_overlap == pytest.approx(0.995) and result.min_overlap == pytest.approx(0.9)
    assert result.passed is passes
    if not passes:
        [failure] = result.failures
        assert failure["check"] == "top_k_overlap" and failure["queries"] == [3]


def test_reorders_among_equal_scores_count_as_agreement():
    n, k = 4, 3
    expected = [["a", "b", "c"]] * n

    def tied(queries, k):  # the same ids, the two tied ones swapped, and a tie at the boundary
        return [[Hit("b", 0.5, {}), Hit("a", 0.5, {}), Hit("d", 0.7, {})] for _ in queries]

    def original(queries, k):
        return [[Hit("a", 0.5, {}), Hit("b", 0.5, {}), Hit("c", 0.7, {})] for _ in queries]

    src = dataclasses.replace(_side("s", True, expected), search=original)
    dst = dataclasses.replace(_side("t", True, expected), search=tied)
    result = Validation(source="s", target="t")
    compare_queries(src, dst, np.zeros((0, 4), np.float32), n, k, None, np.random.default_rng(0), result)
    assert result.passed and result.mean_overlap == 1.0 and result.rank_agreement == 1.0
