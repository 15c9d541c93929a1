"""The freeze flag's contract on every backend: an operator's pause, leased freezes, stale freezes.

Conformance suite (parametrized over faiss-flat, faiss-hnsw, pgvector-hnsw, pgvector-flat). The
processes whose liveness decides staleness are real: this test process (alive) and a Python child
that has exited (gone).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from reference import build_records

from engine.errors import IngestionPaused
from engine.repository import freeze


def dead_holder(**fields) -> dict:
    """The holder record of a process that has exited."""
    code = ("import json, sys; from engine.repository import freeze; "
            "print(json.dumps(freeze.holder(**json.loads(sys.argv[1]))))")
    done = subprocess.run([sys.executable, "-c", code, json.dumps(fields)], capture_output=True, text=True,
                          check=True, timeout=60)
    record = json.loads(done.stdout)
    assert record["pid"] != os.getpid()
    return record


def test_an_operators_pause_has_no_holder_is_never_stale_and_writers_never_clear_it(make_store):
    store = make_store()
    store.upsert(build_records(3))
    before = store.pause_ingestion()
    assert before.paused is False
    state = store.freeze_state()
    assert (state.paused, state.held_by, state.lease_expires, state.stale) == (True, None, None, False)
    stats = store.stats()
    assert (stats["paused"], stats["stale"], stats["held_by"], stats["lease_expires"]) == (True, False, None, None)
    with pytest.raises(IngestionPaused):
        store.upsert(build_records(1, prefix="new"))
    with pytest.raises(IngestionPaused):
        store.delete(["r00000"])
    assert store.resume_ingestion(stale_only=True).paused is True and store.is_paused()  # not stale: kept
    assert store.resume_ingestion(freeze.holder(kind="export")).paused and store.is_paused()  # not its own
    store.resume_ingestion()
    assert not store.is_paused() and store.count() == 3


def test_a_live_holders_freeze_blocks_writers_and_only_its_holder_or_an_operator_clears_it(make_store):
    store = make_store()
    store.upsert(build_records(3))
    me = freeze.holder(kind="export")
    assert store.pause_ingestion(me, 60).paused is False
    state = store.freeze_state()
    assert state.paused and not state.stale and freeze.same_holder(state.held_by, me)
    assert state.lease_expires is not None and time.time() + 50 < state.lease_expires <= time.time() + 61
    assert store.stats()["held_by"]["pid"] == os.getpid()
    with pytest.raises(IngestionPaused, match=f"pid {os.getpid()}"):
        store.upsert(build_records(1, prefix="new"))
    other = dead_holder(kind="export")
    before = store.pause_ingestion(other, 60)  # a second freezer does not take a live holder's freeze
    assert before.paused and not before.stale and not freeze.may_pause(before, other)
    assert freeze.same_holder(store.freeze_state().held_by, me)
    assert store.renew_pause(other, 60) is False
    assert store.resume_ingestion(other).paused and store.is_paused()  # not its freeze
    assert store.resume_ingestion(me).paused and not store.is_paused()
    assert store.renew_pause(me, 60) is False  # lost: nothing to renew


def test_renewal_extends_the_lease_from_another_thread(make_store):
    store = make_store()
    store.upsert(build_records(3))
    me = freeze.holder()
    store.pause_ingestion(me, 5)
    first = store.freeze_state().lease_expires
    results = []
    worker = threading.Thread(target=lambda: results.append(store.renew_pause(me, 120)))
    worker.start()
    assert len(store.query(np.ones(8), 2)) == 2  # the store stays usable meanwhile
    worker.join(30)
    assert results == [True] and store.freeze_state().lease_expires > first + 100


def test_an_expired_lease_is_stale_and_the_next_writer_clears_it(make_store):
    store = make_store()
    store.upsert(build_records(3))
    me = freeze.holder(kind="export")  # alive, but its lease has run out
    store.pause_ingestion(me, 0.05)
    time.sleep(0.1)
    stats = store.stats()
    assert (stats["paused"], stats["stale"]) == (True, True) and stats["held_by"]["pid"] == os.getpid()
    assert store.upsert(build_records(2, prefix="new")).written == 2  # cleared, then written
    assert not store.is_paused() and store.count() == 5


@pytest.mark.parametrize("write", ["upsert", "delete"])
def test_a_gone_holders_freeze_is_stale_at_once_and_any_write_clears_it(make_store, write):
    store = make_store()
    store.upsert(build_records(3))
    gone = dead_holder(kind="export")
    assert store.pause_ingestion(gone, 3600).paused is False  # a long lease: only liveness decides
    stats = store.stats()
    assert (stats["paused"], stats["stale"], stats["held_by"]["pid"]) == (True, True, gone["pid"])
    if write == "upsert":
        store.upsert(build_records(1, prefix="new"))
    else:
        assert store.delete(["r00000"]) == 1
    assert not store.is_paused() and store.freeze_state().held_by is None


def test_a_reused_pid_does_not_keep_a_freeze_alive(make_store):
    store = make_store()
    store.upsert(build_records(3))
    imposter = {**freeze.holder(), "started": freeze.holder()["started"] - 1000.0}  # our pid, another start
    store.pause_ingestion(imposter, 3600)
    assert store.freeze_state().stale
    store.upsert(build_records(1, prefix="new"))
    assert not store.is_paused()


def test_a_stale_freeze_is_replaced_by_a_new_freezer_and_cleared_by_stale_only_resume(make_store):
    store = make_store()
    store.upsert(build_records(3))
    gone = dead_holder()
    store.pause_ingestion(gone, 3600)
    me = freeze.holder()
    before = store.pause_ingestion(me, 60)
    assert before.stale and freeze.may_pause(before, me)
    assert freeze.same_holder(store.freeze_state().held_by, me)
    store.resume_ingestion(me)
    store.pause_ingestion(dead_holder(), 3600)
    assert store.resume_ingestion(stale_only=True).stale and not store.is_paused()


def test_an_operators_pause_replaces_a_leased_freeze_and_outlives_its_holder(make_store):
    store = make_store()
    store.upsert(build_records(3))
    me = freeze.holder(kind="export")
    store.pause_ingestion(me, 60)
    store.pause_ingestion()  # the operator's word wins
    assert store.freeze_state().held_by is None
    assert store.renew_pause(me, 60) is False
    store.resume_ingestion(me)  # the export ends: it does not clear the operator's pause
    assert store.is_paused() and not store.freeze_state().stale


def test_a_process_instance_takes_its_freeze_over_from_its_dead_runner(make_store):
    store = make_store()
    store.upsert(build_records(3))
    old_runner = dead_holder(instance_id="3f2a9c0d1e7b")
    store.pause_ingestion(old_runner, 60)
    assert store.freeze_state().stale
    retry_runner = freeze.holder(instance_id="3f2a9c0d1e7b")
    assert store.renew_pause(retry_runner, 60) is True
    state = store.freeze_state()
    assert not state.stale and state.held_by["pid"] == os.getpid()
    assert store.renew_pause(freeze.holder(instance_id="another"), 60) is False
    assert store.resume_ingestion(freeze.holder(instance_id="3f2a9c0d1e7b")).paused and not store.is_paused()


def test_a_holder_and_a_lease_go_together(make_store):
    store = make_store()
    with pytest.raises(ValueError):
        store.pause_ingestion(freeze.holder(), None)
    with pytest.raises(ValueError):
        store.pause_ingestion(None, 60)
    assert not store.is_paused()
