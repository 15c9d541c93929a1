"""Shared fixtures: one PostgreSQL server per session, and a store URI for every backend.

``store_uri`` / ``make_store`` are parametrized over ``faiss-flat``, ``faiss-hnsw``,
``pgvector-hnsw`` and ``pgvector-flat``; a test that takes either runs once per backend.
Set ``PROCOS_TEST_PG_DSN=postgresql://...`` to run the pgvector cases against an existing server
instead of an embedded one.
"""

from __future__ import annotations

import atexit
import json
import os
import tempfile
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from reference import build_records, with_options
from s3_support import moto_endpoint, s3  # noqa: F401 - fixtures: a moto S3 server for the transport tests

PG_DSN_ENV = "PROCOS_TEST_PG_DSN"

# The suite never touches the developer's own state: the per-user default PROCOS_HOME
# ($XDG_DATA_HOME/procos) points into a temporary folder, and the deployment environment is dev
# unless a test sets PROCOS_ENV=prod itself (unset means prod: fail closed). Set on os.environ so that
# every `procos` subprocess a test starts inherits it.
_SUITE_DATA = tempfile.mkdtemp(prefix="procos-test-xdg-")
os.environ["XDG_DATA_HOME"] = _SUITE_DATA
os.environ["PROCOS_ENV"] = "dev"
for _name in ("PROCOS_HOME", "PROCOS_CONFIG", "PROCOS_TOKEN", "PROCOS_TRUSTED_KEYS", "PROCOS_SIGNING_KEY",
              "PROCOS_AGE_IDENTITY", "PROCOS_PROCESSES", "PROCOS_STATE_DSN", "PROCOS_WEBHOOK_URL"):
    os.environ.pop(_name, None)


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--seed", type=int, default=None,
                     help="seed of the reliability campaign in tests/chaos (else $CHAOS_SEED, else 1)")


@dataclass(frozen=True)
class PgServer:
    """The session's PostgreSQL: a libpq URI, and the data dir when it is an embedded server."""

    dsn: str
    datadir: Path | None


@dataclass(frozen=True)
class StoreCase:
    """One backend configuration of the conformance suite."""

    name: str  # faiss-flat | faiss-hnsw | pgvector-hnsw | pgvector-flat
    backend: str  # faiss | pgvector
    index: str  # flat | hnsw


STORE_CASES = [
    StoreCase("faiss-flat", "faiss", "flat"),
    StoreCase("faiss-hnsw", "faiss", "hnsw"),
    StoreCase("pgvector-hnsw", "pgvector", "hnsw"),
    StoreCase("pgvector-flat", "pgvector", "flat"),
]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """$PROCOS_TEST_PG_DSN when set, else one embedded pgserver (PostgreSQL 16 + pgvector) for the session.

    The embedded data dir is a ``mkdtemp`` folder outside pytest's 0700 ``pytest-of-<user>`` tree
    (pgserver runs postgres as the ``pgserver`` user when we are root); it is stopped and deleted
    when the last process using it exits.
    """
    dsn = os.environ.get(PG_DSN_ENV)
    if dsn:
        yield PgServer(dsn=dsn, datadir=None)
        return
    pgserver = pytest.importorskip("pgserver")
    parent = Path(tempfile.mkdtemp(prefix="procos-test-pg-")).resolve()
    datadir = parent / "data"
    atexit.register(_remove_if_empty, parent)  # registered first, so it runs after pgserver's cleanup
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        server = pgserver.get_server(datadir, cleanup_mode="delete")
    try:
        from engine.repository.embedded import server_uri
    except ImportError:  # the backend's helper is not there: use the server directly
        dsn = server.get_uri()
    else:
        dsn = server_uri(datadir)  # the same server (pgserver keeps one instance per data dir)
    yield PgServer(dsn=dsn, datadir=datadir)
    _forget_dead_handles(datadir)


def _remove_if_empty(folder: Path) -> None:
    if folder.is_dir() and not any(folder.iterdir()):
        folder.rmdir()


def _forget_dead_handles(datadir: Path) -> None:
    """Drop pids of subprocesses that exited without cleanup (``os._exit``) from pgserver's handle list.

    Otherwise pgserver would think they still use the server and never stop it at exit.
    """
    path = datadir / ".handle_pids.json"
    if not path.exists():
        return
    alive = []
    for pid in json.loads(path.read_text()):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        alive.append(pid)
    path.write_text(json.dumps(alive))


@pytest.fixture(scope="session")
def pg_dsn(pg_server: PgServer) -> str:
    """A libpq URI such as ``postgresql://postgres:@/postgres?host=/socket/dir``."""
    return pg_server.dsn


@pytest.fixture(scope="session")
def pg_datadir(pg_server: PgServer) -> Path:
    """The embedded server's data directory (skips when running against $PROCOS_TEST_PG_DSN)."""
    if pg_server.datadir is None:
        pytest.skip(f"{PG_DSN_ENV} is set: no embedded data directory")
    return pg_server.datadir


@pytest.fixture(params=STORE_CASES, ids=[c.name for c in STORE_CASES])
def store_case(request: pytest.FixtureRequest) -> StoreCase:
    return request.param


def _drop_tables(dsn: str, prefixes: list[str]) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for name in names:
            if any(name.startswith(p) for p in prefixes):
                conn.execute(f'DROP TABLE IF EXISTS "{name}" CASCADE')


@pytest.fixture
def new_store_uri(store_case: StoreCase, tmp_path: Path,
                  request: pytest.FixtureRequest) -> Iterator[Callable[..., str]]:
    """Factory: ``new_store_uri(with_index=True, **options)`` -> the URI of a new, empty store of this case.

    With ``with_index=True`` the case's ``index=`` option is included (unless ``index`` is given
    in ``options``); with ``with_index=False`` it is not.
    """
    tables: list[str] = []
    pg = request.getfixturevalue("pg_server") if store_case.backend == "pgvector" else None

    def make(with_index: bool = True, **options: Any) -> str:
        n = len(tables)
        if store_case.backend == "faiss":
            base = f"faiss:{tmp_path / f'store{n}'}"
            tables.append(f"store{n}")
        else:
            table = f"t_{uuid.uuid4().hex[:12]}"
            tables.append(table)
            base = (with_options(pg.dsn, table=table) if pg.datadir is None
                    else f"postgresql+embedded:{pg.datadir}?table={table}")
        if with_index:
            options = {"index": store_case.index, **options}
        return with_options(base, **options)

    yield make
    if pg is not None and pg.datadir is None and tables:
        _drop_tables(pg.dsn, tables)


@pytest.fixture
def store_uri(new_store_uri: Callable[..., str]) -> str:
    """A new, empty store of this case: ``faiss:{tmp}/store0?index=...`` or a fresh pgvector table."""
    return new_store_uri()


class StoreFactory:
    """Opens stores with :func:`open_repository` and closes whatever is still open at teardown."""

    def __init__(self, default_uri: str) -> None:
        self.default_uri = default_uri
        self.open: list[Any] = []

    def __call__(self, uri: str | None = None, **kwargs: Any) -> Any:
        from engine.repository import open_repository

        store = open_repository(uri or self.default_uri, **kwargs)
        self.open.append(store)
        return store

    def close(self, store: Any) -> None:
        self.open.remove(store)
        store.close()

    def close_all(self) -> None:
        while self.open:
            self.open.pop().close()


@pytest.fixture
def make_store(store_uri: str) -> Iterator[StoreFactory]:
    """Factory: ``make_store(uri=None, **open_repository_kwargs)``; default URI is ``store_uri``."""
    factory = StoreFactory(store_uri)
    yield factory
    factory.close_all()


@pytest.fixture
def make_records() -> Callable[..., list]:
    """``make_records(n, dims=8, seed=0, prefix="r", version=1, metadata=None)``: deterministic records."""
    return build_records
