"""Conformance across processes: the freeze flag and the write lock are seen by every process.

Other processes are real ``python`` subprocesses using the public API (or, for the lock, holding
``write.lock`` with ``fcntl.flock`` the way a writing FAISS process does).
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from reference import build_records

from engine.errors import IngestionPaused, StoreLocked
from engine.records import EmbeddingRecord
from engine.repository import parse_uri

TIMEOUT = 60


def run_python(code: str) -> subprocess.CompletedProcess:
    proc = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=TIMEOUT)
    assert proc.returncode == 0, f"subprocess failed:\n{proc.stderr}"
    return proc


class Holder:
    """A subprocess that runs ``code``, prints ``ready``, and waits for a line on stdin before exiting."""

    def __init__(self, code: str) -> None:
        script = textwrap.dedent(code) + "\nprint('ready', flush=True)\nsys.stdin.readline()\n"
        self.proc = subprocess.Popen([sys.executable, "-c", "import sys\n" + script], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if line.strip() != "ready":
            self.proc.kill()
            raise AssertionError(f"holder did not start: {line!r} {self.proc.stderr.read()}")

    def release(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.write("\n")
            self.proc.stdin.flush()
            try:
                self.proc.wait(timeout=TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()
        self.proc.stderr.close()


def test_freeze_flag_set_by_another_process_blocks_writes_here(make_store, store_uri):
    store = make_store()
    store.upsert(build_records(4))
    run_python(f"""
        from engine.repository import open_repository
        store = open_repository({store_uri!r})
        store.pause_ingestion()
        store.close()
    """)
    assert store.is_paused()
    assert store.stats()["paused"] is True
    with pytest.raises(IngestionPaused):
        store.upsert(build_records(2, prefix="new"))
    with pytest.raises(IngestionPaused):
        store.delete(["r00000"])
    assert store.count() == 4

    out = run_python(f"""
        from engine.repository import open_repository
        store = open_repository({store_uri!r})
        print(store.is_paused())
        store.resume_ingestion()
        store.close()
    """)
    assert out.stdout.strip() == "True"
    assert not store.is_paused()
    store.upsert(build_records(2, prefix="new"))
    assert store.delete(["r00000"]) == 1
    assert store.count() == 5


def test_writes_work_while_the_store_is_merely_open_in_another_process(make_store, store_uri):
    store = make_store()
    store.upsert(build_records(4))
    holder = Holder(f"""
        from engine.repository import open_repository
        store = open_repository({store_uri!r})
        store.count()
        store.query([1.0] * 8, 2)
    """)
    try:
        store.upsert(build_records(3, prefix="new", seed=2))
        assert store.delete(["r00001"]) == 1
        assert store.count() == 6
    finally:
        holder.release()
    assert holder.proc.returncode == 0, holder.proc.stderr


def test_faiss_write_lock_held_by_another_process_raises_store_locked(make_store, store_uri, store_case):
    if store_case.backend != "faiss":
        pytest.skip("pgvector writers coordinate through PostgreSQL transactions, not a lock file")
    store = make_store()
    store.upsert(build_records(4))
    lock = Path(parse_uri(store_uri).location) / "write.lock"
    holder = Holder(f"""
        import fcntl
        fh = open({str(lock)!r}, "a")
        fcntl.flock(fh, fcntl.LOCK_EX)
    """)
    try:
        with pytest.raises(StoreLocked):
            store.upsert([EmbeddingRecord("blocked", np.ones(8, np.float32))])
        with pytest.raises(StoreLocked):
            store.delete(["r00000"])
    finally:
        holder.release()
    assert store.count() == 4
    assert store.fetch(["blocked"]) == []
    store.upsert([EmbeddingRecord("after", np.ones(8, np.float32))])
    assert store.count() == 5


def test_a_write_is_durable_when_upsert_returns_even_if_the_process_dies(make_store, store_uri):
    run_python(f"""
        import os
        import numpy as np
        from engine.records import EmbeddingRecord
        from engine.repository import open_repository
        store = open_repository({store_uri!r}, metric="l2")
        store.upsert([EmbeddingRecord(f"k{{i}}", np.full(8, i + 1.0, np.float32)) for i in range(5)])
        assert store.delete(["k0"]) == 1
        os._exit(0)  # no close(), no atexit handlers
    """)
    store = make_store()
    assert store.count() == 4
    assert [r.id for r in store.iter_records()] == ["k1", "k2", "k3", "k4"]
    assert store.query(np.full(8, 3.0), 1)[0].id == "k2"


def test_writes_from_two_processes_are_both_kept(make_store, store_uri):
    store = make_store()
    store.upsert(build_records(3, prefix="here"))
    run_python(f"""
        import numpy as np
        from engine.records import EmbeddingRecord
        from engine.repository import open_repository
        store = open_repository({store_uri!r})
        store.upsert([EmbeddingRecord("there", np.ones(8, np.float32))])
        store.close()
    """)
    store.upsert(build_records(2, prefix="later", seed=5))
    make_store.close(store)
    again = make_store()
    assert [r.id for r in again.iter_records()] == [
        "here00000", "here00001", "here00002", "later00000", "later00001", "there"]
    assert again.count() == 6
    assert {h.id for h in again.query(np.ones(8), 10)} == set(r.id for r in again.iter_records())


def test_an_open_store_sees_records_written_by_another_process(make_store, store_uri):
    store = make_store()
    store.upsert(build_records(3))
    run_python(f"""
        import numpy as np
        from engine.records import EmbeddingRecord
        from engine.repository import open_repository
        store = open_repository({store_uri!r})
        store.upsert([EmbeddingRecord("there", np.ones(8, np.float32))])
        store.delete(["r00000"])
        store.close()
    """)
    assert store.count() == 3
    assert [r.id for r in store.fetch(["there", "r00000"])] == ["there"]
    assert store.query(np.ones(8), 1)[0].id == "there"
    assert "r00000" not in {h.id for h in store.query(np.ones(8), 10)}
