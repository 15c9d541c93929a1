"""Export -> (delete the source) -> import on every backend pair, and the store-facing guarantees:
freeze flag cleared on failure, tampered bundles write nothing, conflict rules, settings checks."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import numpy as np
import pytest
from reference import with_options

from engine.errors import BundleInvalid, SettingsMismatch
from engine.records import make_batch
from engine.repository import open_repository
from engine.snapshot import (
    export_snapshot,
    import_snapshot,
    manifest_of,
    open_target,
    pack_bundle,
    verify_bundle,
)
from engine.synthetic import synthetic_artifacts, synthetic_batches

BACKENDS = ("faiss", "pgvector")
PAIRS = [(a, b) for a in BACKENDS for b in BACKENDS]


class Stores:
    """Makes store URIs of either backend under one test, and deletes a store entirely."""

    def __init__(self, tmp_path: Path, request: pytest.FixtureRequest) -> None:
        self.tmp_path = tmp_path
        self.request = request

    def uri(self, backend: str, **options) -> str:
        if backend == "faiss":
            return with_options(f"faiss:{self.tmp_path / ('faiss_' + uuid.uuid4().hex[:8])}", **options)
        pg = self.request.getfixturevalue("pg_server")
        table = f"t_{uuid.uuid4().hex[:12]}"
        base = (with_options(pg.dsn, table=table) if pg.datadir is None
                else f"postgresql+embedded:{pg.datadir}?table={table}")
        return with_options(base, **options)

    def destroy(self, uri: str) -> None:
        if uri.startswith("faiss:"):
            shutil.rmtree(uri.removeprefix("faiss:").split("?")[0])
            return
        import psycopg

        pg = self.request.getfixturevalue("pg_server")
        table = uri.split("table=")[1].split("&")[0]
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute(f'DROP TABLE IF EXISTS "{table}", "{table}_tombstones" CASCADE')
            conn.execute("DELETE FROM procos_store_state WHERE table_name = %s", (table,))
            conn.execute("DELETE FROM knowledge_artifacts WHERE store = %s", (table,))


@pytest.fixture
def stores(tmp_path: Path, request: pytest.FixtureRequest) -> Stores:
    return Stores(tmp_path, request)


def seeded(uri: str, count: int = 500, dims: int = 16, metric: str = "cosine"):
    repo = open_repository(uri, dimensions=dims, metric=metric)
    repo.bulk_load(synthetic_batches(count, dims, seed=3, batch_size=128))
    for path, data in synthetic_artifacts(3).items():
        repo.artifacts.write(path, data)
    return repo


def contents(repo) -> dict:
    batches = list(repo.iter_batches(97))
    return {
        "ids": sum((b.ids for b in batches), []),
        "vectors": b"".join(b.vectors.astype("<f4").tobytes() for b in batches),
        "metadata": sum((b.metadata for b in batches), []),
        "versions": sum((b.versions.tolist() for b in batches), []),
        "source_hashes": sum((b.source_hashes for b in batches), []),
        "created": sum((b.created_us.tolist() for b in batches), []),
        "updated": sum((b.updated_us.tolist() for b in batches), []),
        "artifacts": {a.path: repo.artifacts.read(a.path) for a in repo.artifacts.list()},
    }


def top5(repo, queries: np.ndarray) -> list[list[tuple[str, float]]]:
    return [[(h.id, h.score) for h in repo.query(q, 5)] for q in queries]


@pytest.mark.parametrize(("source", "target"), PAIRS, ids=[f"{a}-to-{b}" for a, b in PAIRS])
def test_migration_keeps_every_byte_and_every_answer(source: str, target: str, stores: Stores, tmp_path: Path):
    src_uri = stores.uri(source, index="flat")
    repo = seeded(src_uri)
    before = contents(repo)
    queries = np.random.default_rng(7).standard_normal((20, 16)).astype(np.float32)
    answers = top5(repo, queries)
    result = export_snapshot(repo, tmp_path / "snaps", freeze=True)
    repo.close()
    stores.destroy(src_uri)
    assert result.record_count == 500 and verify_bundle(result.path).ok

    dst = open_target(stores.uri(target, index="flat"), manifest_of(result.path))
    try:
        out = import_snapshot(dst, result.path, mode="replace")
        assert out == {"imported": 500, "skipped": 0, "target": dst.uri, "snapshot_id": result.snapshot_id,
                       "content_hash": result.content_hash}
        assert dst.metric == "cosine" and dst.dimensions == 16
        after = contents(dst)
        assert after == before
        for want, got in zip(answers, top5(dst, queries), strict=True):
            assert {i for i, _ in want} == {i for i, _ in got}
            for (wi, ws), (gi, gs) in zip(want, got, strict=True):
                assert wi == gi or abs(ws - gs) < 1e-5  # reordered only among equal scores
                assert abs(ws - gs) < 1e-4
        again = export_snapshot(dst, tmp_path / "snaps")
        assert again.content_hash == result.content_hash
        assert (Path(again.path) / "embeddings/part-00000.parquet").read_bytes() == \
            (Path(result.path) / "embeddings/part-00000.parquet").read_bytes()
    finally:
        dst.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_freeze_is_set_during_export_and_cleared_when_it_fails(backend: str, stores: Stores, tmp_path: Path):
    repo = seeded(stores.uri(backend), count=50)
    seen = []
    original = repo.iter_batches

    def failing(batch_size: int = 10_000):
        seen.append(repo.is_paused())
        yield from original(10)
        raise OSError("disk pulled mid-export")

    repo.iter_batches = failing  # inject a failure into the real store's read path
    try:
        with pytest.raises(OSError, match="disk pulled"):
            export_snapshot(repo, tmp_path / "snaps", freeze=True, batch_size=10)
        assert seen == [True]
        assert not repo.is_paused()
        assert [p for p in (tmp_path / "snaps").iterdir()] == []
        del repo.iter_batches
        result = export_snapshot(repo, tmp_path / "snaps", freeze=True)
        assert not repo.is_paused() and result.record_count == 50
    finally:
        repo.close()


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("mode", ["append", "replace"])
def test_import_of_a_tampered_bundle_leaves_the_target_unchanged(backend: str, mode: str, stores: Stores,
                                                                 tmp_path: Path):
    source = seeded(stores.uri(backend), count=60)
    bundle = Path(export_snapshot(source, tmp_path / "snaps").path)
    source.close()
    target = seeded(stores.uri(backend), count=20, dims=16)
    target.write_batch(next(synthetic_batches(5, 16, seed=99)))
    before = contents(target)
    with open(bundle / "embeddings/part-00000.parquet", "r+b") as fh:
        fh.seek(100)
        byte = fh.read(1)
        fh.seek(100)
        fh.write(bytes([byte[0] ^ 0xFF]))
    try:
        with pytest.raises(BundleInvalid) as info:
            import_snapshot(target, bundle, mode=mode)
        assert any(f["path"] == "embeddings/part-00000.parquet" for f in info.value.findings)
        assert contents(target) == before
    finally:
        target.close()


@pytest.mark.parametrize("backend", BACKENDS)
def test_append_uses_version_precedence_and_imports_from_an_archive(backend: str, stores: Stores, tmp_path: Path):
    source = seeded(stores.uri(backend), count=30)
    archive = pack_bundle(export_snapshot(source, tmp_path / "snaps").path)
    source.close()
    target = open_repository(stores.uri(backend), dimensions=16)
    rows = next(synthetic_batches(30, 16, seed=3, batch_size=30))
    newer = make_batch(ids=rows.ids[:2], vectors=rows.vectors[:2] + 1, metadata=['{"mine":1}'] * 2,
                       versions=[5, 1], source_hashes=["a", "b"], created_us=[0, 0], updated_us=[0, 0])
    target.write_batch(newer)
    try:
        out = import_snapshot(target, archive, mode="append")
        assert (out["imported"], out["skipped"]) == (28, 2)  # version 1 ties with and loses to stored
        kept = {r.id: r for r in target.fetch(rows.ids[:2])}
        assert kept[rows.ids[0]].version == 5 and kept[rows.ids[1]].metadata == {"mine": 1}
        assert target.count() == 30 and len(target.artifacts.list()) == 10
        out = import_snapshot(target, archive, mode="append", on_conflict="overwrite")
        assert out["imported"] == 30 and target.fetch(rows.ids[:1])[0].version == 1
    finally:
        target.close()


def test_open_target_refuses_an_existing_store_with_another_metric(stores: Stores, tmp_path: Path):
    source = seeded(stores.uri("faiss"), count=10)
    result = export_snapshot(source, tmp_path / "snaps")
    source.close()
    uri = stores.uri("faiss")
    other = seeded(uri, count=5, metric="l2")
    other.close()
    with pytest.raises(SettingsMismatch, match="metric"):
        open_target(uri, result.path)
    wrong = open_repository(uri)
    try:
        with pytest.raises(SettingsMismatch, match="metric"):
            import_snapshot(wrong, result.path)
    finally:
        wrong.close()


def test_repository_methods_delegate_to_the_snapshot_package(stores: Stores, tmp_path: Path):
    repo = seeded(stores.uri("faiss"), count=10)
    result = repo.export_snapshot(str(tmp_path / "snaps"))
    assert result.to_json()["record_count"] == 10
    target = open_target(stores.uri("faiss"), result.path)
    assert target.import_snapshot(result.path)["imported"] == 10
    repo.close()
    target.close()
