"""A lost PostgreSQL connection is a StoreError people can act on, and the store reconnects."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from engine.errors import StoreError
from engine.repository import open_repository
from engine.synthetic import synthetic_batches


def terminate_other_backends(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as admin:
        return len(admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE pid <> pg_backend_pid() AND datname = current_database() "
                                 "AND backend_type = 'client backend'").fetchall())


@pytest.fixture
def repo(pg_dsn: str):
    sep = "&" if "?" in pg_dsn else "?"
    store = open_repository(f"{pg_dsn}{sep}table=t_{uuid.uuid4().hex[:10]}&index=flat")
    store.bulk_load(synthetic_batches(300, 8))
    yield store
    store.close()


def test_a_killed_connection_gives_an_actionable_error_and_the_next_call_reconnects(repo, pg_dsn: str):
    assert repo.count() == 300
    assert terminate_other_backends(pg_dsn) >= 1
    with pytest.raises(StoreError) as info:
        repo.count()
    assert "PostgreSQL connection" in info.value.message and "run it again" in info.value.hint
    assert repo.count() == 300  # reconnected
    repo.write_batch(next(synthetic_batches(1, 8, seed=5)))


def test_a_connection_lost_mid_stream_is_a_store_error(repo, pg_dsn: str):
    repo.bulk_load(synthetic_batches(30_000, 8, seed=9))  # ~30k more rows: the COPY is still streaming
    stream = repo.iter_batches(50)
    assert len(next(stream)) == 50
    terminate_other_backends(pg_dsn)
    with pytest.raises(StoreError, match="PostgreSQL connection"):
        list(stream)
