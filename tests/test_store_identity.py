"""Every store has a stable id; bundles record it, and deltas or chains mixing stores are refused."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from engine import api
from engine.errors import LineageError
from engine.repository import open_repository
from engine.snapshot import export_delta, manifest_of
from engine.synthetic import synthetic_batches


def test_store_id_is_stable_across_reopen_and_differs_between_stores(make_store, store_uri, new_store_uri):
    first = make_store(store_uri)
    first.write_batch(next(synthetic_batches(5, 8)))
    sid = first.store_id
    make_store.close(first)
    again = make_store(store_uri)
    assert again.store_id == sid and len(sid) >= 32
    assert again.stats()["store_id"] == sid
    other = make_store(new_store_uri())
    assert other.store_id != sid


def test_bundles_record_the_store_id_and_deltas_refuse_another_stores_base(tmp_path: Path):
    a, b = f"faiss:{tmp_path / 'a'}?index=flat", f"faiss:{tmp_path / 'b'}?index=flat"
    api.seed_store(a, 40, 8)
    api.seed_store(b, 40, 8)  # same content, different store (and sequence history)
    base_a = api.export_snapshot(a, tmp_path / "snaps")["path"]
    repo_a = open_repository(a)
    assert manifest_of(base_a)["store_id"] == repo_a.store_id
    repo_a.close()
    repo_b = open_repository(b)
    with pytest.raises(LineageError, match="another store"):
        export_delta(repo_b, base_a, tmp_path / "snaps")
    repo_b.close()
    assert sorted(p.name for p in (tmp_path / "snaps").iterdir() if p.is_dir()) == [Path(base_a).name]


def test_a_chain_mixing_two_stores_is_refused_with_nothing_written(tmp_path: Path):
    a, b = f"faiss:{tmp_path / 'a'}?index=flat", f"faiss:{tmp_path / 'b'}?index=flat"
    api.seed_store(a, 30, 8)
    full_a = api.export_snapshot(a, tmp_path / "snaps")["path"]
    shutil.copytree(tmp_path / "a", tmp_path / "b")  # a copy of the store's files is the same store...
    assert open_repository(b).store_id == open_repository(a).store_id
    api.seed_store(f"faiss:{tmp_path / 'c'}?index=flat", 30, 8)
    full_c = api.export_snapshot(f"faiss:{tmp_path / 'c'}?index=flat", tmp_path / "snaps_c")["path"]
    repo = open_repository(a)
    repo.delete(["rec-0000003"])
    delta_a = export_delta(repo, full_a, tmp_path / "snaps").path
    repo.close()
    target = f"faiss:{tmp_path / 'target'}"
    with pytest.raises(LineageError):
        api.import_snapshot([full_c, delta_a], target)
    assert not (tmp_path / "target").exists() or open_repository(target).count() == 0
