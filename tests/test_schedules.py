"""schedules.yaml: parsing, aligned occurrences, first sighting, and missed runs (skip) without a queue."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from workflow_support import make_env

from engine.errors import ConfigError
from engine.workflow.schedules import Schedule, iso, read_schedules


def test_occurrences_are_aligned_so_every_scheduler_computes_the_same_due_times():
    every = Schedule("s", "p", every="15m")
    now = datetime(2026, 3, 1, 10, 7, 30, tzinfo=UTC)
    assert every.previous(now) == datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
    assert every.next(now) == datetime(2026, 3, 1, 10, 15, tzinfo=UTC)
    cron = Schedule("c", "p", cron="0 2 * * *")
    assert cron.previous(now) == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)
    assert cron.next(now) == datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
    assert cron.previous(datetime(2026, 3, 1, 2, 0, tzinfo=UTC)) == datetime(2026, 3, 1, 2, 0, tzinfo=UTC)


def test_bad_entries_are_refused_naming_each_problem(tmp_path):
    path = tmp_path / "schedules.yaml"
    path.write_text(json.dumps({"schedules": [{"name": "a", "process": "p", "cron": "0 2 * *"},
                                              {"name": "b", "process": "p", "every": "1h", "cron": "0 * * * *"},
                                              {"name": "c", "process": "p", "every": "soon"},
                                              {"name": "d", "process": "p", "every": "1h", "missed": "later"}]}))
    with pytest.raises(ConfigError) as err:
        read_schedules(path)
    for fragment in ("five fields", "either cron or every", "schedule c", "skip or once"):
        assert fragment in err.value.message


def test_a_new_schedule_waits_for_its_next_occurrence_and_missed_runs_are_skipped(tmp_path, monkeypatch):
    from engine.workflow.scheduler import Scheduler

    env = make_env(tmp_path, monkeypatch)
    (env.home / "schedules.yaml").write_text(json.dumps({"schedules": [
        {"name": "hourly", "process": "fx_linear", "every": "1h", "missed": "skip"}]}))
    svc = env.service()
    scheduler = Scheduler(svc.directory.identity("alice"))
    t0 = datetime(2026, 3, 1, 10, 30, tzinfo=UTC)
    assert scheduler.tick(t0) == []  # first sighting: 10:00 is the baseline, nothing starts
    assert svc.store.schedule_baseline("hourly", "ignored") == iso(datetime(2026, 3, 1, 10, tzinfo=UTC))
    assert scheduler.tick(t0 + timedelta(minutes=10)) == []  # still the same occurrence
    late = datetime(2026, 3, 1, 13, 5, tzinfo=UTC)  # 11:00, 12:00 and 13:00 missed while no scheduler ran
    assert scheduler.tick(late) == ["skipped"]
    assert [(r["due"], r["state"]) for r in svc.store.schedule_runs("hourly")] == [
        (iso(datetime(2026, 3, 1, 13, tzinfo=UTC)), "skipped")]
    other = Scheduler(svc.directory.identity("alice"))
    assert other.tick(late) == []  # a second scheduler finds the occurrence already claimed
