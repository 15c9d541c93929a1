"""Search tuning after a restore: an HNSW target's ef_search is raised until it serves the recall floor,
stored in the store (every later process uses it), and reported by imports and by rebuild_search.

The targets are built with a poor graph (``m=4, ef_construction=8, ef_search=1``) so that the
default effort is far from the floor and tuning has work to do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from engine import api
from engine.validation import tune_search

COUNT, DIM = 2000, 32
POOR = "m=4&ef_construction=8&ef_search=1"
# a graph good enough to reach the floor below the maximum every time (m=4 graphs fall apart: some builds
# stay under 0.95 even at ef_search 1000), searched with too little effort to start with
MODEST = "m=8&ef_construction=32&ef_search=1"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("tuning")
    source = f"faiss:{base / 'source'}"
    api.seed_store(source, COUNT, DIM, seed=3)
    return {"source": source, "bundle": api.export_snapshot(source, base / "snapshots")["path"]}


def pg_uri(pg_server, options: str = "") -> str:
    table = f"t_{uuid.uuid4().hex[:12]}"
    if pg_server.datadir is None:
        base = f"{pg_server.dsn}{'&' if '?' in pg_server.dsn else '?'}table={table}"
    else:
        base = f"postgresql+embedded:{pg_server.datadir}?table={table}"
    return f"{base}&{options}" if options else base


def procos(*args: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k != "PROCOS_HOME"}
    run = subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, timeout=300,
                         env=env)
    assert run.returncode == 0, run.stderr
    return json.loads(run.stdout)


def plain(uri: str) -> str:
    """The URI without the HNSW options (so the store's own stored settings are used)."""
    for options in (POOR, MODEST):
        uri = uri.replace(f"&{options}", "").replace(f"?{options}", "")
    return uri


def test_import_raises_ef_search_until_the_floor_and_every_later_process_uses_it(bundle, pg_server):
    target = pg_uri(pg_server, MODEST)
    result = procos("snapshot", "import", bundle["bundle"], target, "--json")
    tuning = result["search_tuning"]
    assert tuning["tuned"] and tuning["reached"] and tuning["recall"] >= 0.95 and tuning["floor"] == 0.95
    assert 10 <= tuning["ef_search"] <= 1000
    tried = [step["ef_search"] for step in tuning["tried"]]
    assert tried[0] == 10 and tried == sorted(tried) and tried[-1] == tuning["ef_search"]
    assert all(step["recall"] < tuning["goal"] for step in tuning["tried"][:-1])  # it stopped at the first good one
    stats = procos("store", "stats", plain(target), "--json")  # a new process opens the store
    assert stats["index_params"] == {"m": 8, "ef_construction": 32, "ef_search": tuning["ef_search"]}
    check = procos("validate", bundle["source"], plain(target), "--report", os.devnull, "--json")
    assert check["passed"], check["failures"]
    assert check["sides"]["target"]["ef_search"] == tuning["ef_search"]


def test_a_faiss_hnsw_target_is_tuned_by_the_api_import_too(bundle, tmp_path):
    target = f"faiss:{tmp_path / 'target'}?{POOR}"
    tuning = api.import_snapshot(bundle["bundle"], target, mode="replace")["search_tuning"]
    assert tuning["tuned"] and tuning["reached"] and tuning["ef_search"] > 1
    assert procos("store", "stats", plain(target), "--json")["index_params"]["ef_search"] == tuning["ef_search"]


def test_rebuild_search_the_import_process_step_reports_the_tuning(bundle, pg_server):
    target = pg_uri(pg_server, MODEST)
    api.load_vectors(bundle["bundle"], target)  # the process's load step does not tune
    assert api.store_stats(plain(target))["index_params"]["ef_search"] == 1
    rebuilt = api.rebuild_search(plain(target))
    tuning = rebuilt["search_tuning"]
    assert tuning["tuned"] and tuning["reached"] and rebuilt["index_params"]["ef_search"] == tuning["ef_search"]
    json.dumps(rebuilt)  # the process stores it in its instance data


def test_tuning_stops_at_the_stated_maximum_and_says_the_floor_was_not_reached(bundle, tmp_path):
    from engine.repository import open_repository

    target = f"faiss:{tmp_path / 'target'}?{POOR}"
    api.load_vectors(bundle["bundle"], target)
    repo = open_repository(plain(target), create=False)
    try:
        tuning = tune_search(repo, floor=1.0, max_ef_search=30)
        assert not tuning["reached"] and tuning["recall"] < 1.0 and tuning["max_ef_search"] == 30
        assert [step["ef_search"] for step in tuning["tried"]] == [10, 20, 30]  # raised to k first
        assert tuning["ef_search"] == 30 and repo.settings.index_params["ef_search"] == 30
        screened = [step["queries"] for step in tuning["tried"]]
        assert screened == [100, 100, 400] and tuning["queries"] == 400  # the reported figure: all 400 queries
    finally:
        repo.close()


def test_a_target_that_already_meets_the_floor_is_left_alone(bundle, tmp_path):
    target = f"faiss:{tmp_path / 'target'}"
    tuning = api.import_snapshot(bundle["bundle"], target)["search_tuning"]  # default graph, 2,000 records
    assert tuning["tried"] == [{"ef_search": 40, "recall": tuning["recall"], "queries": 400}] and tuning["recall"] >= tuning["goal"]
    assert not tuning["tuned"] and tuning["ef_search"] == 40 and tuning["reached"]


def test_flat_and_empty_targets_are_not_tuned(bundle, tmp_path):
    flat = api.import_snapshot(bundle["bundle"], f"faiss:{tmp_path / 'flat'}?index=flat")["search_tuning"]
    assert flat["tuned"] is False and flat["recall"] is None and "flat" in flat["reason"]
    empty = f"faiss:{tmp_path / 'empty'}"
    api.seed_store(empty, 0, DIM, artifacts=False)
    tuning = api.tune_search(empty)
    assert tuning["tuned"] is False and "no records" in tuning["reason"]


def test_a_dry_run_import_does_not_tune_or_create_anything(bundle, tmp_path):
    target = tmp_path / "never"
    plan = api.import_snapshot(bundle["bundle"], f"faiss:{target}", dry_run=True)
    assert "search_tuning" not in plan and not Path(target).exists()


def test_the_effort_chosen_serves_the_floor_on_queries_the_tuning_never_saw(bundle, pg_server):
    """The tuning's sample stands for real traffic: 1,000 other queries (another seed, stored and perturbed
    vectors) answered at the chosen effort reach the floor against a plain numpy sort of every vector."""
    import numpy as np
    from reference import distances

    from engine.repository import open_repository
    from engine.validation.queryset import perturb

    target = pg_uri(pg_server, MODEST)
    tuning = api.import_snapshot(bundle["bundle"], target)["search_tuning"]
    assert tuning["reached"] and tuning["queries"] == 400
    repo = open_repository(plain(target), create=False)
    try:
        ids, vectors = [], []
        for batch in repo.iter_batches(500):
            ids += batch.ids
            vectors.append(batch.vectors)
        stored = np.concatenate(vectors)
        rng = np.random.default_rng(99)
        picks = rng.choice(len(stored), 1000, replace=False)
        queries = np.concatenate([stored[picks[:500]], perturb(stored[picks[500:]], "cosine", rng)])
        found = []
        for q in queries:
            d = distances(stored, q, "cosine")
            truth = {ids[i] for i in np.argsort(d, kind="stable")[:10]}
            found.append(len(truth & {h.id for h in repo.query(q, 10)}) / 10)
    finally:
        repo.close()
    assert np.mean(found) >= 0.95, (np.mean(found), tuning)
