"""The exact check and the recall check of ``validate``.

- Identical records give an exact check that passes at 100% on every pair of backends (FAISS flat
  and HNSW, pgvector HNSW and flat, and a bundle), HNSW indexes built deliberately poor included.
- A target with identical records but a poor, untuned HNSW index fails on recall alone, and says so.
- The comparison rules themselves: ties may reorder, anything else may not.
"""

from __future__ import annotations

import itertools
import json
import uuid

import pytest
from click.testing import CliRunner
from reference import with_options

from engine import api
from engine.cli import cli
from engine.repository import Hit
from engine.validation.exact import compare_exact, first_difference
from engine.validation.recall import RecallRule, judge, recall_at_k

COUNT, DIM = 2000, 32
POOR = "m=4&ef_construction=8&ef_search=1"


def pg_uri(pg_server, options: str = "") -> str:
    table = f"t_{uuid.uuid4().hex[:12]}"
    base = (with_options(pg_server.dsn, table=table) if pg_server.datadir is None
            else f"postgresql+embedded:{pg_server.datadir}?table={table}")
    return f"{base}&{options}" if options else base


@pytest.fixture(scope="module")
def stores(tmp_path_factory, pg_server) -> dict[str, str]:
    """A default FAISS HNSW source, its bundle, and the bundle loaded (not tuned) into every backend."""
    base = tmp_path_factory.mktemp("exact-pairs")
    source = f"faiss:{base / 'source'}"
    api.seed_store(source, COUNT, DIM, seed=5)
    bundle = api.export_snapshot(source, base / "snapshots")["path"]
    out = {"source": source, "bundle": bundle}
    targets = {"faiss-flat": f"faiss:{base / 'flat'}?index=flat", "faiss-hnsw": f"faiss:{base / 'hnsw'}?{POOR}",
               "pgvector-hnsw": pg_uri(pg_server, POOR), "pgvector-flat": pg_uri(pg_server, "index=flat")}
    for name, uri in targets.items():
        assert api.load_vectors(bundle, uri)["imported"] == COUNT  # the import process's load step: no tuning
        api.register_artifacts(bundle, uri)
        out[name] = uri
    return out


SIDES = ["bundle", "faiss-flat", "faiss-hnsw", "pgvector-hnsw", "pgvector-flat"]


@pytest.mark.parametrize("src, dst", list(itertools.product(SIDES, SIDES)),
                         ids=[f"{a}->{b}" for a, b in itertools.product(SIDES, SIDES)])
def test_identical_records_pass_the_exact_check_at_100_percent_on_every_pair(stores, src, dst):
    result = api.validate(stores[src], stores[dst], queries=12)
    exact = result["exact"]
    assert exact["passed"] and exact["queries"] == 12 and exact["mismatches"] == [], exact
    assert result["mean_overlap"] == 1.0 and result["min_overlap"] == 1.0 and result["rank_agreement"] == 1.0
    assert result["max_score_diff"] < 1e-5
    assert not [f for f in result["failures"] if f["check"] != "recall"], result["failures"]


@pytest.mark.parametrize("name", ["pgvector-hnsw", "faiss-hnsw"])
def test_a_poor_untuned_hnsw_target_fails_on_recall_alone_and_the_report_says_so(stores, name, tmp_path):
    report = tmp_path / "report.md"
    out = CliRunner().invoke(cli, ["validate", stores["source"], stores[name], "--report", str(report), "--json"])
    assert out.exit_code == 4  # a check failed
    result = json.loads(out.stdout)
    assert [f["check"] for f in result["failures"]] == ["recall"]
    assert result["exact"]["passed"] and result["checks"]["records"]["vector_mismatch"] == 0
    recall = result["recall"]
    assert recall["target"] < 0.95 and not recall["passed"] and recall["rule"] == "floor"
    assert recall["source"] > recall["target"]
    message = result["failures"][0]["message"]
    assert "below the floor 0.95 (rule floor)" in message and "serves poor approximate results" in message
    text = report.read_text()
    assert text.startswith("# Validation: FAIL") and "- **recall**: target recall@10" in text
    assert "| floor: target recall >= 0.95 | 0.9500 |" in text


def test_a_flat_target_with_identical_records_serves_exact_answers(stores):
    result = api.validate(stores["source"], stores["pgvector-flat"], queries=12)
    assert result["passed"], result["failures"]
    assert result["recall"]["target"] == 1.0 and result["sides"]["target"]["index"] == "flat"


# --- the comparison rules ---------------------------------------------------------------------------


def hits(*pairs) -> list[Hit]:
    return [Hit(rid, score, {}) for rid, score in pairs]


def test_ties_may_reorder_other_differences_may_not():
    base = hits(("a", 0.1), ("b", 0.2), ("c", 0.2), ("d", 0.3))
    assert first_difference(base, hits(("a", 0.1), ("c", 0.2), ("b", 0.2), ("d", 0.3))) is None
    assert first_difference(base, hits(("a", 0.1), ("b", 0.2), ("c", 0.2), ("e", 0.3))) is None  # tie at the cut
    assert first_difference(base, hits(("a", 0.1), ("b", 0.2), ("d", 0.3), ("c", 0.2))) == 2  # not a tie
    assert first_difference(base, hits(("a", 0.1), ("b", 0.2), ("c", 0.2000001), ("d", 0.3))) is None
    assert first_difference(base, hits(("a", 0.1), ("b", 0.25), ("c", 0.2), ("d", 0.3))) == 1  # a changed vector
    assert first_difference(base, hits(("a", 0.1), ("b", 0.2), ("c", 0.2))) == 3  # one short


def test_ids_swapped_onto_each_others_distances_are_caught():
    base = hits(("a", 0.1), ("b", 0.2))
    assert first_difference(base, hits(("b", 0.1), ("a", 0.2))) == 0


def test_compare_exact_lists_the_first_difference_of_each_mismatched_query():
    src = [hits(("a", 0.1), ("b", 0.2)), hits(("x", 0.5), ("y", 0.6))]
    dst = [hits(("a", 0.1), ("b", 0.2)), hits(("x", 0.5), ("z", 0.7))]
    check = compare_exact(src, dst, ["stored", "perturbed"], 2)
    assert not check.passed and check.matches == [True, False] and check.overlaps == [1.0, 0.5]
    [m] = check.mismatches
    assert m == {"query": 1, "kind": "perturbed", "overlap": 0.5, "rank": 1, "source": {"id": "y", "score": 0.6},
                 "target": {"id": "z", "score": 0.7}}
    assert compare_exact(src, dst, ["stored", "perturbed"], 2, min_overlap=0.5).passed


def test_recall_counts_records_tied_with_the_exact_kth_and_nothing_else():
    exact = hits(("a", 0.1), ("b", 0.2), ("c", 0.3))
    assert recall_at_k(exact, hits(("a", 0.1), ("b", 0.2), ("c", 0.3))) == 1.0
    assert recall_at_k(exact, hits(("a", 0.1), ("c", 0.3), ("d", 0.3))) == 1.0  # d ties the 3rd
    assert recall_at_k(exact, hits(("a", 0.1), ("c", 0.3), ("e", 0.4))) == pytest.approx(2 / 3)
    assert recall_at_k(exact, []) == 0.0 and recall_at_k([], []) == 1.0


def test_the_recall_rules_judge_the_target():
    assert judge([1.0, 0.8], [0.9, 0.96], RecallRule.of(), 10) == {
        "source": 0.9, "target": 0.9299999999999999, "floor": 0.95, "rule": "floor", "tolerance": None, "k": 10,
        "passed": False, "queries": 2}
    relative = judge([1.0, 0.8], [0.9, 0.96], RecallRule.of(vs_source=0.05), 10)
    assert relative["rule"] == "vs_source" and relative["floor"] == pytest.approx(0.85) and relative["passed"]
    assert judge([0.5], [0.95], RecallRule.of(floor=0.95), 10)["passed"]
