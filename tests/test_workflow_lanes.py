"""Lanes, roles and approvals: who may see and complete user tasks, and the audit of refusals."""

from __future__ import annotations

import pytest
from workflow_support import make_env

from engine.errors import NotAuthorized, TaskNotFound, WorkflowError


@pytest.fixture
def env(tmp_path, monkeypatch):
    return make_env(tmp_path, monkeypatch)


def start_prod(env, user="carol"):
    env.prod()
    svc = env.service()
    result = svc.start_process("fx_approval", {"counter": str(env.counter)}, user=user)
    assert result["state"] == "waiting"
    return svc, result["instance_id"]


def test_dev_approval_is_automatic(env):
    result = env.service().start_process("fx_approval", {"counter": str(env.counter), "environment": "dev"})
    assert result["state"] == "completed"
    assert result["data"]["approved"] is True and env.counts() == ["Freeze", "Apply"]


def test_task_list_shows_only_tasks_the_user_may_complete(env):
    svc, iid = start_prod(env, user="alice")
    [task] = svc.list_tasks("bob")
    assert task == {"task_id": task["task_id"], "instance_id": iid, "process": "fx_approval",
                    "name": "Approve the change", "lane": "Approver", "started_by": "alice",
                    "waiting_since": task["waiting_since"], "subject": {}}
    assert svc.list_tasks("carol") == []  # Owner only
    assert svc.list_tasks("alice") == []  # has Approver, but started it (prod)
    assert svc.list_tasks("mallory") == []  # not a user of the store


def test_user_without_the_role_cannot_complete_and_the_refusal_is_audited(env):
    svc, iid = start_prod(env)
    [task] = svc.list_tasks("bob")
    with pytest.raises(NotAuthorized, match="lacks role 'Approver'"):
        svc.complete_task(task["task_id"], "carol", approve=True)
    shown = svc.show_instance(iid)
    assert shown["state"] == "waiting"
    [refused] = [h for h in shown["history"] if h["kind"] == "refused"]
    assert refused["by"] == "carol" and "Approver" in refused["why"] and refused["time"]
    assert env.counts() == ["Freeze"]


def test_starter_cannot_approve_in_prod(env):
    svc, iid = start_prod(env, user="alice")
    [task] = svc.list_tasks("bob")
    with pytest.raises(NotAuthorized, match="separation of duties"):
        svc.complete_task(task["task_id"], "alice", approve=True)
    assert [h["by"] for h in svc.show_instance(iid)["history"] if h["kind"] == "refused"] == ["alice"]
    result = svc.complete_task(task["task_id"], "bob", approve=True, comment="looks right")
    assert result["state"] == "completed" and result["data"]["approver"] == "bob"
    [action] = [h for h in svc.show_instance(iid)["history"] if h["kind"] == "user_action"]
    assert (action["by"], action["decision"], action["comment"]) == ("bob", "approve", "looks right")


def test_rejection_ends_cleanly_clearing_the_freeze_flag(env):
    svc, iid = start_prod(env)
    [task] = svc.list_tasks("alice")  # carol started it, so alice may approve
    result = svc.complete_task(task["task_id"], "alice", approve=False, comment="not now")
    assert result["state"] == "completed"
    assert result["data"]["frozen"] is False and result["data"]["approved"] is False
    assert env.counts() == ["Freeze", "Reject"]
    event, finished = svc.store.events(iid)
    assert event["event"] == "approval_rejected" and event["comment"] == "not now"
    assert (finished["event"], finished["outcome"]) == ("instance_finished", "rejected")
    assert result["outcome"] == "rejected" and result["exit_code"] == 0


def test_a_task_cannot_be_completed_twice(env):
    svc, _ = start_prod(env)
    [task] = svc.list_tasks("bob")
    svc.complete_task(task["task_id"], "bob", approve=True)
    with pytest.raises(TaskNotFound):
        env.service().complete_task(task["task_id"], "alice", approve=True)


def test_roles_yaml_adds_roles_to_store_users_but_grants_no_identity(env):
    (env.home / "roles.yaml").write_text("users:\n  carol: [Approver]\n  mallory: [Approver]\n")
    svc, iid = start_prod(env, user="alice")
    assert [t["instance_id"] for t in svc.list_tasks("carol")] == [iid]  # store Owner + roles.yaml Approver
    assert svc.list_tasks("mallory") == []  # listed in roles.yaml, but not a user of the store
    [task] = svc.list_tasks("bob")
    with pytest.raises(NotAuthorized, match="not a user of the store"):
        svc.complete_task(task["task_id"], "mallory", approve=True)


def test_malformed_roles_file_is_a_clear_error(env):
    (env.home / "roles.yaml").write_text("users: [alice]\n")
    with pytest.raises(WorkflowError, match="must map users to lists of roles") as info:
        env.service().list_tasks("bob")
    assert "alice: [Owner, Approver]" in info.value.hint
