"""Events go to events.jsonl, the state DB and, when configured, a webhook (with retries)."""

from __future__ import annotations

import json

import pytest
from workflow_support import FIXTURES, make_env, serve

from engine import events
from engine.errors import WorkflowError
from engine.workflow import events as workflow_events


@pytest.fixture
def hook():
    s = serve(FIXTURES)
    yield s
    s.stop()


def test_events_are_posted_to_the_webhook_with_retries(tmp_path, monkeypatch, hook):
    env = make_env(tmp_path, monkeypatch)
    monkeypatch.setenv("PROCOS_WEBHOOK_URL", hook.url + "/hook")
    hook.statuses = [503]  # the first attempt fails, the retry succeeds
    svc = env.service()
    result = svc.start_process("fx_linear", {"counter": str(env.counter)})
    assert result["state"] == "completed"
    posted = [json.loads(b) for b in hook.bodies]  # the 503 attempt, its retry, then instance_finished
    assert [e["event"] for e in posted] == ["snapshot_exported", "snapshot_exported", "instance_finished"]
    assert posted[1]["instance_id"] == result["instance_id"] and posted[2]["outcome"] == "succeeded"
    kinds = [h["kind"] for h in svc.show_instance(result["instance_id"])["history"]]
    assert "warning" not in kinds


def test_a_dead_webhook_does_not_fail_the_process_but_is_recorded(tmp_path, monkeypatch, hook):
    env = make_env(tmp_path, monkeypatch)
    monkeypatch.setenv("PROCOS_WEBHOOK_URL", "http://user:secret@127.0.0.1:9/hook")
    monkeypatch.setattr(events, "BACKOFF", (0.01,))
    svc = env.service()
    result = svc.start_process("fx_linear", {"counter": str(env.counter)})
    assert result["state"] == "completed"
    warnings = [h for h in svc.show_instance(result["instance_id"])["history"] if h["kind"] == "warning"]
    assert len(warnings) == 2  # snapshot_exported and instance_finished were both refused by the dead hook
    assert all("did not accept" in w["message"] and "secret" not in w["message"] for w in warnings)
    assert (env.home / "events.jsonl").read_text().count("snapshot_exported") == 1


def test_unknown_event_names_are_refused():
    with pytest.raises(WorkflowError, match="unknown event"):
        workflow_events.make_event("snapshot_exportd", "i1")
