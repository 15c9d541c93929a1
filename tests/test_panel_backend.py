"""What the panel relies on below its pages: background runners, login rate limits, uploads, diagrams,
the check_import process and panel.yaml. Real SpiffWorkflow, real processes, real files."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from workflow_support import make_env

from engine.errors import ConfigError, InvalidInput, LoginThrottled

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def env(tmp_path, monkeypatch):
    return make_env(tmp_path, monkeypatch)


def wait_for(iid: str, states: tuple[str, ...], timeout: float = 60.0) -> dict:
    from engine.api import processes

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        shown = processes.show_instance(iid)
        if shown["state"] in states:
            return shown
        time.sleep(0.1)
    raise AssertionError(f"instance {iid} did not reach {states}: {shown['state']}")


def test_start_and_approve_without_waiting_run_in_a_background_runner(env):
    from engine.api import processes

    env.prod()
    svc = env.service()
    alice, bob = svc.directory.identity("alice"), svc.directory.identity("bob")
    started = processes.start_process("fx_approval", {"counter": str(env.counter)}, actor=alice, wait=False)
    assert started["state"] == "running"
    row = svc.store.get_instance(started["instance_id"])
    assert row.runner_pid not in (None, __import__("os").getpid())  # another process runs it
    shown = wait_for(started["instance_id"], ("waiting",))
    [task] = shown["tasks"]
    decided = processes.complete_task(task["task_id"], True, "fine", actor=bob, wait=False)
    assert decided["state"] == "running"
    done = wait_for(started["instance_id"], ("completed", "error"))
    assert done["state"] == "completed" and env.counts() == ["Freeze", "Apply"]
    actions = [h for h in done["history"] if h["kind"] == "user_action"]
    assert [(a["by"], a["decision"], a["comment"]) for a in actions] == [("bob", "approve", "fine")]
    log = (env.home / "runners" / f"{started['instance_id']}.log").read_text()
    assert '"state": "completed"' in log


def test_a_runner_runs_only_an_instance_handed_to_it(env):
    svc = env.service()
    result = svc.start_process("fx_linear", {"counter": str(env.counter)}, user="alice")
    before = svc.store.get_instance(result["instance_id"])
    done = subprocess.run([sys.executable, "-m", "engine.workflow.background", result["instance_id"]], input="{}",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    after = svc.store.get_instance(result["instance_id"])
    assert (after.status, after.revision) == (before.status, before.revision)


def test_failed_logins_are_limited_per_user_and_a_restart_does_not_reset_them(env):
    from engine.api import processes
    from engine.workflow import throttle

    svc = env.service()
    admin = svc.directory.identity(__import__("getpass").getuser())
    svc.directory.set_password(admin, "alice", "alice-password")
    for _ in range(throttle.USER_LIMIT):
        assert processes.login("alice", "wrong-password", client="10.0.0.1") is None
    with pytest.raises(LoginThrottled, match="too many failed logins for user 'alice'"):
        processes.login("alice", "alice-password", client="10.0.0.2")  # right password, still refused
    svc.close()
    restarted = env.service()  # a new panel process reads the same state
    with pytest.raises(LoginThrottled):
        processes.login("alice", "alice-password", client="10.0.0.3")
    refusals = [e for e in restarted.store.audit() if e["kind"] == "refused" and e.get("action") == "login"]
    assert sum("too many failed logins" in e["why"] for e in refusals) == 2
    assert sum(e["why"] == "wrong user name or password" for e in refusals) == throttle.USER_LIMIT
    assert "alice-password" not in str(restarted.store.audit())
    later = datetime.now(UTC) + timedelta(seconds=throttle.WINDOW_SECONDS + 1)
    throttle.check(restarted.store, "alice", "10.0.0.3", now=later)  # the window passed: allowed again


def test_failed_logins_are_limited_per_client_across_user_names(env):
    from engine.api import processes
    from engine.workflow import throttle

    svc = env.service()
    admin = svc.directory.identity(__import__("getpass").getuser())
    svc.directory.set_password(admin, "bob", "bob-password")
    for n in range(throttle.CLIENT_LIMIT):
        assert processes.login(f"guess{n}", "nope-nope", client="192.0.2.7") is None
    with pytest.raises(LoginThrottled, match="this client"):
        processes.login("bob", "bob-password", client="192.0.2.7")
    assert processes.login("bob", "bob-password", client="192.0.2.8").name == "bob"


def test_a_good_login_clears_the_users_own_failures(env):
    from engine.api import processes

    svc = env.service()
    admin = svc.directory.identity(__import__("getpass").getuser())
    svc.directory.set_password(admin, "carol", "carol-password")
    for _ in range(4):
        processes.login("carol", "bad-password")
    assert processes.login("carol", "carol-password").name == "carol"
    for _ in range(4):
        processes.login("carol", "bad-password")
    assert processes.login("carol", "carol-password").name == "carol"  # 8 failures, never 5 in a row


def test_uploads_stream_to_a_private_file_and_stop_at_the_limit(env, tmp_path):
    from engine.api import panel

    path = Path(panel.receive_upload("alice", "../../kb.tar.zst", iter([b"a" * 10, b"b" * 10]), limit_bytes=20))
    assert path.name == "kb.tar.zst" and path.read_bytes() == b"a" * 10 + b"b" * 10
    assert Path(panel.panel_config()["uploads"]) in path.parents and oct(path.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(InvalidInput, match="larger than the limit"):
        panel.receive_upload("alice", "big.tar.zst", iter([b"x" * 15, b"y" * 15]), limit_bytes=20)
    leftovers = [p for p in Path(panel.panel_config()["uploads"]).rglob("*") if p.is_file()]
    assert leftovers == [path]  # the partial upload is gone
    with pytest.raises(InvalidInput, match="not a packed bundle"):
        panel.receive_upload("alice", "notes.txt", iter([b"hi"]), limit_bytes=20)
    with pytest.raises(InvalidInput, match="is not an upload"):
        panel.remove_upload(tmp_path / "elsewhere.tar.zst")
    assert panel.remove_upload(path) and not path.exists()


def test_panel_yaml_lists_stores_and_locations_and_refuses_passwords(env, monkeypatch):
    from engine.api import panel

    (env.home / "panel.yaml").write_text("stores: [{name: kb, uri: 'faiss:/srv/kb'}]\n"
                                         "locations: [/srv/snapshots, 's3://b/p']\nupload_limit_mb: 5\n")
    monkeypatch.setenv("VECTOR_ENDPOINT", "faiss:/srv/other")
    cfg = panel.panel_config()
    assert cfg["stores"] == [{"name": "kb", "uri": "faiss:/srv/kb"}, {"name": "VECTOR_ENDPOINT", "uri": "faiss:/srv/other"}]
    assert cfg["locations"] == ["/srv/snapshots", "s3://b/p"] and cfg["upload_limit_mb"] == 5
    (env.home / "panel.yaml").write_text("stores: [{name: pg, uri: 'postgresql://kb:hunter2@db/k'}]\n")
    with pytest.raises(ConfigError, match="holds a password") as err:
        panel.panel_config()
    assert "hunter2" not in str(err.value)


def test_activity_states_mark_completed_active_and_failed_elements():
    from engine.workflow.diagram import activity_states

    history = [{"kind": "step", "task": "A", "state": "COMPLETED"}, {"kind": "script_started", "task": "B"},
               {"kind": "script", "task": "B"}, {"kind": "step", "task": "B", "state": "COMPLETED"},
               {"kind": "script_started", "task": "C"}, {"kind": "error", "task": "C"}]
    assert activity_states(history, "error", []) == {"completed": ["A", "B"], "active": [], "failed": ["C"]}
    assert activity_states(history[:5], "running", []) == {"completed": ["A", "B"], "active": ["C"], "failed": []}
    assert activity_states(history[:4], "waiting", ["T"]) == {"completed": ["A", "B"], "active": ["T"], "failed": []}
    retried = [*history, {"kind": "retry"}, {"kind": "script_started", "task": "C"}]
    assert activity_states(retried, "running", []) == {"completed": ["A", "B"], "active": ["C"], "failed": []}


def test_check_import_passes_a_sound_bundle_with_its_plan_and_refuses_a_damaged_one(env, tmp_path):
    from engine import api
    from engine.api import processes

    api.seed_store(f"faiss:{tmp_path / 'src'}", 200, 16)
    exported = api.export_snapshot(f"faiss:{tmp_path / 'src'}", tmp_path / "snaps", pack=True)
    archive = Path(exported["path"] + ".tar.zst")
    me = processes.authenticate()
    target = f"faiss:{tmp_path / 'target'}"
    good = processes.start_process("check_import", {"bundle": str(archive), "target": target}, actor=me)
    assert (good["state"], good["outcome"]) == ("completed", "succeeded")
    assert good["data"]["verification"]["ok"] and good["data"]["plan"]["would_insert"] == 200
    assert not Path(tmp_path / "target").exists()  # a check creates no store
    damaged = tmp_path / "damaged.tar.zst"
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    damaged.write_bytes(bytes(data))
    bad = processes.start_process("check_import", {"bundle": str(damaged), "target": target}, actor=me)
    assert (bad["state"], bad["outcome"], bad["data"]["passed"]) == ("completed", "failed", False)
    assert bad["data"]["plan"] is None and "failed verification" in bad["data"]["refusal"]
