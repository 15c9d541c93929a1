"""The four product processes end to end, through the ``procos`` CLI as a user runs them.

Each CLI call is a fresh ``python -m engine.cli`` process with ``PROCOS_HOME`` in a temporary folder
whose user store holds: carol may own and approve, alice only owns, bob only approves. A command run
with ``--as NAME`` runs with NAME's own token in ``PROCOS_TOKEN`` (NAME at their own terminal).
Stores are small FAISS stores (200 x 16) except where pgvector is the point; embedded PostgreSQL data
folders live outside pytest's tree (pgserver runs postgres as another system user).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
USERS = {"carol": ["Owner", "Approver"], "alice": ["Owner"], "bob": ["Approver"], "scheduler": []}
COUNT, DIM = 200, 16


class Procos:
    """Runs ``procos`` commands with one PROCOS_HOME, and reads what they leave behind."""

    def __init__(self, home: Path) -> None:
        from workflow_support import seed_users

        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        self.env = {k: v for k, v in os.environ.items()
                    if k not in ("PROCOS_PROCESSES", "PROCOS_STATE_DSN", "PROCOS_WEBHOOK_URL", "VECTOR_ENDPOINT",
                                 "PROCOS_TOKEN")}
        self.env["PROCOS_HOME"] = str(home)
        self.tokens = seed_users(USERS, home=home)

    def argv(self, *args: str) -> list[str]:
        return [sys.executable, "-m", "engine.cli", *args]

    def env_for(self, args: tuple[str, ...], environment: str | None = None) -> dict[str, str]:
        """The environment of one call: ``--as NAME`` runs with NAME's token; ``environment`` sets PROCOS_ENV."""
        env = dict(self.env)
        if "--as" in args:
            who = args[args.index("--as") + 1]
            if who in self.tokens:
                env["PROCOS_TOKEN"] = self.tokens[who]
        if environment:
            env["PROCOS_ENV"] = environment
        return env

    def run(self, *args: str, code: int = 0, environment: str | None = None) -> subprocess.CompletedProcess:
        done = subprocess.run(self.argv(*args), env=self.env_for(args, environment), cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == code, f"procos {' '.join(args)} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    def json(self, *args: str, code: int = 0, environment: str | None = None):
        return json.loads(self.run(*args, "--json", code=code, environment=environment).stdout)

    def start(self, process: str, user: str, code: int = 0, environment: str | None = None, **variables) -> dict:
        """Start ``process`` as ``user`` in a deployment whose environment is ``environment`` (default dev)."""
        pairs = [x for k, v in variables.items() for x in ("--var", f"{k}={v}")]
        return self.json("process", "start", process, *pairs, "--as", user, code=code, environment=environment)

    def show(self, instance_id: str) -> dict:
        return self.json("instance", "show", instance_id)

    def events(self, *, finished: bool = False) -> list[dict]:
        """The events written, without the ``instance_finished`` that closes every instance unless asked."""
        path = self.home / "events.jsonl"
        found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        return [e for e in found if finished or e["event"] != "instance_finished"]


def scripts_run(shown: dict) -> list[str]:
    """The BPMN ids of the script tasks that completed, in order."""
    return [h["task"] for h in shown["history"] if h["kind"] == "script" and h["outcome"] == "ok"]


def paused(uri: str) -> bool:
    from engine import api

    return bool(api.store_stats(uri)["paused"])


def verified(bundle: str):
    from engine.snapshot import verify_bundle

    report = verify_bundle(bundle)
    assert report.ok, report.summary()
    return report


def leftovers(out_dir: Path) -> list[str]:
    """Staging folders (dot-named) left in an export folder."""
    return [p.name for p in out_dir.iterdir() if p.name.startswith(".")] if out_dir.is_dir() else []


@pytest.fixture(scope="module")
def seeded(tmp_path_factory) -> Path:
    """A seeded FAISS store folder (with artifacts) that tests copy."""
    root = tmp_path_factory.mktemp("seeded")
    Procos(root / "home").run("store", "seed", f"faiss:{root / 'kb'}", "--count", str(COUNT), "--dim", str(DIM))
    return root / "kb"


@pytest.fixture
def source(seeded, tmp_path) -> str:
    shutil.copytree(seeded, tmp_path / "source")
    return f"faiss:{tmp_path / 'source'}"


@pytest.fixture
def procos(tmp_path) -> Procos:
    return Procos(tmp_path / "home")


@pytest.fixture(scope="module")
def outside():
    """A folder outside pytest's tree for embedded PostgreSQL data directories."""
    root = Path(tempfile.mkdtemp(prefix="procos-test-processes-"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def dev_export(seeded, tmp_path_factory) -> dict:
    """One dev export, run straight through (the subject of test_dev_export_runs_straight_through)."""
    root = tmp_path_factory.mktemp("dev_export")
    shutil.copytree(seeded, root / "source")
    p = Procos(root / "home")
    result = p.start("export_snapshot", "alice", source=f"faiss:{root / 'source'}", out_dir=root / "out",
                     environment="dev")
    return {"result": result, "procos": p, "source": f"faiss:{root / 'source'}", "out": root / "out"}


@pytest.fixture(scope="module")
def pg_import(dev_export, outside, tmp_path_factory) -> dict:
    """The dev export's bundle imported into an embedded pgvector store (dev: no approval)."""
    p = Procos(tmp_path_factory.mktemp("pg_import") / "home")
    target = f"postgresql+embedded:{outside / 'pg'}"
    result = p.start("import_snapshot", "alice", bundle=dev_export["result"]["data"]["bundle"], target=target,
                     mode="append", environment="dev", jobs=2)
    return {"result": result, "procos": p, "target": target}


# --- export_snapshot ------------------------------------------------------------------------------


def test_prod_export_waits_for_an_approver_refuses_others_and_publishes_a_verified_bundle(procos, source,
                                                                                           tmp_path):
    out = tmp_path / "out"
    started = procos.start("export_snapshot", "carol", source=source, out_dir=out, environment="prod")
    assert started["state"] == "waiting" and "bundle" not in started["data"]
    assert not paused(source) and not out.exists()  # nothing is frozen or written before approval
    iid = started["instance_id"]
    [task] = procos.json("task", "list", "--as", "bob")
    assert task["instance_id"] == iid and task["lane"] == "Approver"
    assert procos.json("task", "list", "--as", "alice") == []  # no Approver role
    assert procos.json("task", "list", "--as", "carol") == []  # started it: four eyes in prod

    no_role = procos.run("task", "complete", task["task_id"], "--as", "alice", "--approve", code=77)
    assert "lacks role 'Approver'" in no_role.stderr
    own = procos.run("task", "complete", task["task_id"], "--as", "carol", "--approve", code=77)
    assert "separation of duties" in own.stderr
    refused = [h for h in procos.show(iid)["history"] if h["kind"] == "refused"]
    assert [(r["by"], r["task"]) for r in refused] == [("alice", "Task_approve"), ("carol", "Task_approve")]

    done = procos.json("task", "complete", task["task_id"], "--as", "bob", "--approve", "--comment", "ok")
    assert done["state"] == "completed"
    bundle = done["data"]["bundle"]
    assert Path(bundle).parent == out and verified(bundle).manifest["record_count"] == COUNT
    procos.run("snapshot", "verify", bundle)  # what an operator runs next
    assert done["data"]["record_count"] == COUNT and done["data"]["approver"] == "bob"
    assert not paused(source) and leftovers(out) == []
    shown = procos.show(iid)
    assert scripts_run(shown) == ["Task_check_request", "Task_freeze", "Task_stage", "Task_dump", "Task_package",
                                  "Task_checksums", "Task_unfreeze", "Task_announce"]
    [action] = [h for h in shown["history"] if h["kind"] == "user_action"]
    assert (action["by"], action["decision"], action["comment"]) == ("bob", "approve", "ok")
    [event] = [e for e in procos.events() if e["instance_id"] == iid]
    assert event["event"] == "snapshot_exported" and event["bundle"] == bundle
    assert event["record_count"] == COUNT and event["content_hash"] == done["data"]["content_hash"]


def test_rejected_export_leaves_no_bundle_and_no_freeze_flag(procos, source, tmp_path):
    out = tmp_path / "out"
    started = procos.start("export_snapshot", "alice", source=source, out_dir=out, environment="prod")
    [task] = procos.json("task", "list", "--as", "bob")
    done = procos.json("task", "complete", task["task_id"], "--as", "bob", "--reject", "--comment", "not now")
    assert done["state"] == "completed" and done["data"]["rejected"] is True and "bundle" not in done["data"]
    assert not out.exists() and not paused(source)
    shown = procos.show(started["instance_id"])
    assert "Task_freeze" not in scripts_run(shown)
    assert [(e["event"], e["comment"]) for e in procos.events()] == [("approval_rejected", "not now")]


def test_failed_export_clears_the_freeze_flag_and_retry_restarts_the_frozen_phase(procos, source, tmp_path):
    out = tmp_path / "out"
    out.write_text("a file where the export folder should be")
    failed = procos.start("export_snapshot", "alice", code=1, source=source, out_dir=out, environment="dev")
    iid = failed["instance_id"]
    assert failed["state"] == "error" and "bundle" not in failed["data"]
    assert not paused(source)  # the error path cleared the freeze flag
    shown = procos.show(iid)
    assert shown["state"] == "error" and "Task_stage" in shown["error"]
    assert scripts_run(shown)[-2:] == ["Task_abort", "Task_clear_after_failure"]
    [script] = [h for h in shown["history"] if h["kind"] == "script" and h["outcome"] == "failed"]
    assert script["script"] == "scripts/v1/start_staging.py" and len(script["sha256"]) == 64
    assert [e["event"] for e in procos.events()] == ["process_failed"]

    out.unlink()  # the operator fixes the cause, then retries
    again = procos.json("instance", "retry", iid, "--as", "alice")
    assert again["state"] == "completed" and again["data"]["attempt"] == 2
    verified(again["data"]["bundle"])
    assert not paused(source) and leftovers(out) == []
    ran = scripts_run(procos.show(iid))
    assert ran.count("Task_freeze") == 2 and ran.count("Task_check_request") == 1
    assert [e["event"] for e in procos.events()] == ["process_failed", "snapshot_exported"]


def test_failure_mid_export_removes_the_staging_folder_and_retry_exports_afresh(procos, source, tmp_path):
    out = tmp_path / "out"
    (tmp_path / "extra").write_text("a file where the artifacts folder should be")  # readable: passes the start
    failed = procos.start("export_snapshot", "alice", code=1, source=source, out_dir=out, environment="dev",
                          artifacts_dir=tmp_path / "extra")
    shown = procos.show(failed["instance_id"])
    assert "Task_package" in shown["error"]
    assert scripts_run(shown)[-4:] == ["Task_stage", "Task_dump", "Task_abort", "Task_clear_after_failure"]
    assert not paused(source) and leftovers(out) == []
    (tmp_path / "extra").unlink()
    (tmp_path / "extra").mkdir()  # fixed; the retried step finds its staging folder gone and restarts
    again = procos.json("instance", "retry", failed["instance_id"], "--as", "alice")
    assert again["state"] == "completed" and again["data"]["attempt"] == 2
    verified(again["data"]["bundle"])
    assert not paused(source) and leftovers(out) == []
    ran = scripts_run(procos.show(failed["instance_id"]))
    assert ran[ran.index("Task_clear_after_failure") + 1:] == [
        "Task_package", "Task_checksums", "Task_freeze", "Task_stage", "Task_dump", "Task_package",
        "Task_checksums", "Task_unfreeze", "Task_announce"]  # skipped ahead, then the whole frozen phase again


def test_killed_export_runner_resumes_without_repeating_completed_scripts(procos, source, tmp_path):
    """The test holds the source's SQLite write lock, so "Set the freeze flag" blocks until the kill."""
    out = tmp_path / "out"
    argv = procos.argv("process", "start", "export_snapshot", "--as", "alice", "--var", f"source={source}",
                       "--var", f"out_dir={out}")
    lock = sqlite3.connect(Path(source.removeprefix("faiss:")) / "store.sqlite", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # WAL: readers go on, the runner's pause_ingestion() waits
    runner = subprocess.Popen(argv, env=procos.env_for(tuple(argv)), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        iid = wait_for_script_start(procos.home, "Task_freeze")
        time.sleep(0.2)
        runner.send_signal(signal.SIGKILL)
        runner.wait(timeout=10)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait()
        lock.execute("ROLLBACK")
        lock.close()
    [row] = procos.json("instance", "list")
    assert row["state"] == "interrupted"
    assert scripts_run(procos.show(iid)) == ["Task_check_request", "Task_auto_approve"]
    again = procos.json("instance", "retry", iid, "--as", "alice")
    assert again["state"] == "completed" and again["data"]["attempt"] == 1
    verified(again["data"]["bundle"])
    assert not paused(source) and leftovers(out) == []
    shown = procos.show(iid)
    assert scripts_run(shown) == ["Task_check_request", "Task_auto_approve", "Task_freeze", "Task_stage",
                                  "Task_dump", "Task_package", "Task_checksums", "Task_unfreeze",
                                  "Task_announce"]  # each exactly once
    started = [h["task"] for h in shown["history"] if h["kind"] == "script_started"]
    assert started.count("Task_freeze") == 2 and started.count("Task_auto_approve") == 1
    assert [h["previous_state"] for h in shown["history"] if h["kind"] == "retry"] == ["interrupted"]


def wait_for_script_start(home: Path, task: str, timeout: float = 60.0) -> str:
    from engine.workflow import WorkflowService
    from engine.workflow.settings import load_settings

    svc = WorkflowService(load_settings({"PROCOS_HOME": str(home)}))
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            for row in svc.list_instances():
                if any(h["kind"] == "script_started" and h.get("task") == task
                       for h in svc.store.history(row["instance_id"])):
                    return row["instance_id"]
            time.sleep(0.1)
    finally:
        svc.close()
    raise AssertionError(f"{task} did not start within {timeout} s")


def test_dev_export_runs_straight_through(dev_export):
    result, p = dev_export["result"], dev_export["procos"]
    assert result["state"] == "completed" and result["data"]["approver"] == "auto (dev)"
    verified(result["data"]["bundle"])
    assert not paused(dev_export["source"]) and leftovers(dev_export["out"]) == []
    assert [e["event"] for e in p.events()] == ["snapshot_exported"]


# --- import_snapshot, validate_snapshot, simulate_restore -------------------------------------------


def test_dev_import_into_embedded_pgvector_emits_import_ready(pg_import):
    result, p = pg_import["result"], pg_import["procos"]
    assert result["state"] == "completed", result
    assert result["data"]["imported"] == COUNT and result["data"]["artifacts"] > 0
    ran = scripts_run(p.show(result["instance_id"]))
    assert ran == ["Task_check_request", "Task_check_package", "Task_verify", "Task_auto_approve", "Task_load",
                   "Task_register", "Task_rebuild", "Task_remove_fetched", "Task_announce"]
    [event] = p.events()
    assert event["event"] == "import_ready" and event["imported"] == COUNT
    assert event["target"] == pg_import["target"]
    tuning = result["data"]["rebuild"]["search_tuning"]  # the "Rebuild search structures" step tuned the target
    assert tuning["reached"] and tuning["recall"] >= 0.95 and tuning["ef_search"] >= 40


def test_prod_import_of_a_tampered_bundle_fails_before_approval(procos, dev_export, tmp_path):
    bundle = tmp_path / "bundle"
    shutil.copytree(dev_export["result"]["data"]["bundle"], bundle)
    victim = bundle / "prompts" / "extract_steps_v1.yaml"
    victim.write_text(victim.read_text() + "# tampered\n")
    failed = procos.start("import_snapshot", "carol", code=3, bundle=bundle, target=f"faiss:{tmp_path / 't'}",
                          environment="prod")
    shown = procos.show(failed["instance_id"])
    assert "Task_verify" in shown["error"] and "failed verification" in shown["error"]
    assert procos.json("task", "list", "--as", "bob") == []  # never reached the approval
    assert not (tmp_path / "t").exists()


def test_validate_snapshot_passes_for_a_faithful_copy_and_fails_for_another_store(pg_import, dev_export, procos,
                                                                                   tmp_path):
    good = procos.start("validate_snapshot", "alice", source=dev_export["source"], target=pg_import["target"],
                        queries=10, k=5)
    assert good["state"] == "completed" and good["data"]["passed"] is True
    assert good["data"]["validation"]["queries"] == 10
    other = f"faiss:{tmp_path / 'other'}"
    procos.run("store", "seed", other, "--count", str(COUNT), "--dim", str(DIM), "--seed", "7")
    bad = procos.start("validate_snapshot", "alice", code=4, source=dev_export["source"], target=other, queries=10,
                       k=5)
    assert bad["state"] == "completed" and bad["data"]["passed"] is False and bad["outcome"] == "failed"
    assert [e["event"] for e in procos.events()] == ["validation_passed", "validation_failed"]


def test_simulate_restore_writes_a_drill_report(procos, source, outside):
    from engine import api

    out = outside / "drill"
    replica = outside / "drill-replica"
    api.replicate_once(source, replica)
    time.sleep(0.2)
    result = procos.start("simulate_restore", "alice", source=source, out_dir=out, replica=replica)
    assert result["state"] == "completed", result
    report_path = Path(result["data"]["report"])
    report = json.loads(report_path.read_text())
    assert {"restore_seconds", "record_count", "validation"} <= set(report)
    assert report["record_count"] == COUNT and report["restore_seconds"] >= 0
    assert report["validation"]["passed"] is True
    assert report["rto_seconds"] >= report["restore_seconds"] and report["rpo_seconds"] >= 0.2  # measured, not 0
    [drill] = procos.json("drill", "history")
    assert drill["report"] == str(report_path) and drill["rto_seconds"] == report["rto_seconds"] and drill["passed"]
    assert report["scratch"].startswith("postgresql+embedded:") and str(out) in report["scratch"]
    assert Path(result["data"]["report_markdown"]).is_file()
    [event] = procos.events()
    assert event["event"] == "dr_drill_completed" and event["report"] == str(report_path)
