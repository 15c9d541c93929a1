"""A write rolled back (a killed import) leaves dead entries in pgvector's HNSW graph; queries still return k hits.

Found by the reliability campaign (tests/chaos): after a SIGKILLed append import, a query of a
4,000-record HNSW store returned 0 to 2 hits, because the graph's nearest entries were the rolled-back
rows. The contract says ``k`` hits whenever ``k`` records exist: a short approximate answer is
answered exactly instead.
"""

from __future__ import annotations

import uuid

import numpy as np
from conftest import with_options

from engine.repository import open_repository
from engine.synthetic import synthetic_batches


def test_queries_come_back_full_after_a_rolled_back_bulk_write(pg_dsn: str):
    table = f"t_{uuid.uuid4().hex[:12]}"
    repo = open_repository(with_options(pg_dsn, table=table, index="hnsw"), dimensions=16)
    try:
        rng = np.random.default_rng(0)
        batch = next(synthetic_batches(4_000, 16, seed=1, batch_size=4_000))
        batch.vectors[:] = rng.standard_normal((4_000, 16)).astype(np.float32)  # far from the query below
        repo.bulk_load([batch])
        near = list(synthetic_batches(20_000, 16, seed=2, batch_size=20_000))[0]
        near.vectors[:] = np.float32(1.0) + rng.standard_normal((20_000, 16)).astype(np.float32) * np.float32(0.01)
        near.ids[:] = [f"zz-{i:05d}" for i in range(20_000)]

        class Killed(Exception):
            pass

        def dying():
            yield near
            raise Killed()  # the import dies after its rows reached the table (and the HNSW graph)

        try:
            repo.bulk_load(dying())  # one transaction, rolled back
        except Killed:
            pass
        assert repo.count() == 4_000
        hits = repo.query(np.ones(16, dtype=np.float32), 10)
        assert len(hits) == 10
        exact = sorted((1 - float(np.dot(v, np.ones(16)) / (np.linalg.norm(v) * 4)), rid)
                       for rid, v in zip(batch.ids, batch.vectors, strict=True))[:10]
        assert [h.id for h in hits] == [rid for _, rid in exact]
    finally:
        repo.close()
