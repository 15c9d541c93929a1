"""The instance store contract, run against every implementation (SQLite, PostgreSQL via pgserver)."""

from __future__ import annotations

import pytest

from engine.errors import InstanceNotFound
from engine.workflow.store import ConcurrentUpdate, InstanceRow, TaskRow, now_iso
from engine.workflow.store_sqlite import SqliteStore


@pytest.fixture(scope="module")
def pg_dsn(tmp_path_factory):
    pgserver = pytest.importorskip("pgserver")
    server = pgserver.get_server(str(tmp_path_factory.mktemp("pg")))
    yield server.get_uri()
    server.cleanup()


@pytest.fixture(params=["sqlite", "postgres"])
def store(request, tmp_path):
    if request.param == "sqlite":
        s = SqliteStore(tmp_path / "state.db")
    else:
        from engine.workflow.store_pg import PostgresStore

        s = PostgresStore(request.getfixturevalue("pg_dsn"))
        with s._tx() as cur:
            for table in ("instances", "tasks", "history", "events", "deployments"):
                cur.execute(f"DELETE FROM {table}")
    yield s
    s.close()


def row(iid="i1"):
    return InstanceRow(instance_id=iid, process="p", version="v1", status="running", started_by="alice",
                       started_at=now_iso(), updated_at=now_iso(), state_json="{}")


def task(tid, iid="i1"):
    return TaskRow(task_id=tid, instance_id=iid, process="p", name="Approve", lane="Approver", bpmn_id="A",
                   environment="prod")


def test_instance_round_trip_tasks_and_history(store):
    store.insert_instance(row(), [task("t1")], [{"time": now_iso(), "kind": "started", "by": "alice"}])
    got = store.get_instance("i1")
    assert (got.process, got.revision, got.state_json, got.started_by) == ("p", 0, "{}", "alice")
    assert store.find_task("t1") == task("t1") and store.find_task("nope") is None
    got.status = "waiting"
    assert store.update_instance(got, 0, [task("t2")], [{"time": now_iso(), "kind": "step"}]) == 1
    assert [t.task_id for t in store.list_tasks()] == ["t2"]
    assert [h["kind"] for h in store.history("i1")] == ["started", "step"]
    assert [(r.instance_id, r.status, r.state_json) for r in store.list_instances()] == [("i1", "waiting", None)]


def test_stale_revision_is_refused(store):
    store.insert_instance(row(), [], [])
    first, second = store.get_instance("i1"), store.get_instance("i1")
    store.update_instance(first, first.revision, [], [])
    with pytest.raises(ConcurrentUpdate):
        store.update_instance(second, second.revision, [], [{"time": now_iso(), "kind": "lost"}])
    assert store.history("i1") == []  # nothing of the losing save was written


def test_missing_instance_events_and_deployments(store):
    with pytest.raises(InstanceNotFound):
        store.get_instance("nope")
    store.add_event({"event": "import_ready", "instance_id": "i1", "time": now_iso(), "n": 1})
    store.add_event({"event": "dr_drill_completed", "instance_id": None, "time": now_iso()})
    assert [e["event"] for e in store.events()] == ["import_ready", "dr_drill_completed"]
    assert store.events("i1")[0]["n"] == 1
    store.record_deployment("p", "v1", "/x.bpmn")
    store.record_deployment("p", "v1", "/x.bpmn")  # idempotent


def test_service_runs_on_postgres(tmp_path, monkeypatch, pg_dsn):
    from workflow_support import make_env, seed_users

    env = make_env(tmp_path, monkeypatch, users=False)
    monkeypatch.setenv("PROCOS_STATE_DSN", pg_dsn)
    svc = env.service()
    with svc.store._tx() as cur:  # this file owns the schema's rows (see the store fixture)
        cur.execute("DELETE FROM users")
    seed_users()
    assert {u.name for u in svc.store.list_users()} >= {"alice", "bob", "carol"}  # users live in the state DB
    env.prod()
    svc = env.service()
    result = svc.start_process("fx_approval", {"counter": str(env.counter)}, user="carol")
    [t] = [t for t in svc.list_tasks("bob") if t["instance_id"] == result["instance_id"]]
    assert svc.complete_task(t["task_id"], "bob", approve=True)["state"] == "completed"
    assert type(svc.store).__name__ == "PostgresStore"
