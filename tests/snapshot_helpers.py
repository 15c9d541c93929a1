"""Build snapshot bundles straight from RecordBatches (no store), for the format-level tests."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.records import RecordBatch
from engine.repository import StoreSettings
from engine.repository.artifacts import DirectoryArtifactStore
from engine.snapshot.staging import start_bundle
from engine.snapshot.writer import ExportResult, finish_bundle, write_artifacts, write_embeddings
from engine.synthetic import synthetic_artifacts, synthetic_batches


def artifact_store(folder: Path, files: dict[str, bytes] | None = None) -> DirectoryArtifactStore:
    store = DirectoryArtifactStore(folder)
    for path, data in (synthetic_artifacts(0) if files is None else files).items():
        store.write(path, data)
    return store


def build_bundle(out_dir: Path, batches: Iterable[RecordBatch], artifacts: DirectoryArtifactStore, *,
                 dims: int, backend: str = "pgvector", metric: str = "cosine", index: str = "hnsw",
                 compression_level: int = 6, source_env: str = "test") -> ExportResult:
    staging = start_bundle(out_dir)
    settings = StoreSettings(dimensions=dims, metric=metric, index=index)
    write_embeddings(staging, batches, settings=settings, backend=backend, uri=f"{backend}:test",
                     compression_level=compression_level)
    write_artifacts(staging, [artifacts])
    return finish_bundle(staging, source_env=source_env)


def synthetic_bundle(out_dir: Path, tmp: Path, *, count: int = 300, dims: int = 16, batch_size: int = 64,
                     backend: str = "pgvector", **kwargs) -> ExportResult:
    store = artifact_store(tmp / "artifacts")
    return build_bundle(out_dir, synthetic_batches(count, dims, seed=1, batch_size=batch_size), store,
                        dims=dims, backend=backend, **kwargs)
