"""index.faiss of a flat store is streamed, yet byte-identical to FAISS's own serialization."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from engine.snapshot.faiss_file import FaissIndexBuilder, new_index, prepare


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
@pytest.mark.parametrize("rows", [0, 1, 37])
@pytest.mark.parametrize("expected", ["unknown", "right", "wrong"])
def test_streamed_flat_index_equals_faiss_write_index(metric: str, rows: int, expected: str, tmp_path: Path):
    """Whether the row count is unknown, known (hashed while written) or announced wrong (the store
    changed between its count and its stream: the header is rewritten and the file hashed again)."""
    vectors = np.random.default_rng(rows).standard_normal((rows, 12)).astype(np.float32) + 0.1
    expected_rows = {"unknown": None, "right": rows, "wrong": rows + 5}[expected]
    builder = FaissIndexBuilder(tmp_path / "index.faiss", 12, metric, "flat", {}, expected_rows=expected_rows)
    for chunk in np.array_split(vectors, 3) if rows else [vectors]:
        builder.add(chunk)
    sha, size = builder.finish()
    reference = new_index(12, metric, "flat", {})
    if rows:
        reference.add(prepare(vectors, metric))
    expected = faiss.serialize_index(reference).tobytes()
    written = (tmp_path / "index.faiss").read_bytes()
    assert written == expected and size == len(expected)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["index.faiss"]  # the spill file is gone
    index = faiss.read_index(str(tmp_path / "index.faiss"))
    assert index.ntotal == rows and index.d == 12
    import hashlib

    assert sha == hashlib.sha256(expected).hexdigest()
