"""An operator's CLI that tells the truth: outcomes and exit codes, shared state and paths, variables
checked before an instance exists, retry --var, the freeze flag left as found, and readable output.

Every command is a fresh ``procos`` process (``tests.test_processes_e2e.Procos``), run from the folders
an operator would be in.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from engine import api
from tests.test_processes_e2e import ROOT, Procos, wait_for_script_start

COUNT, DIM = 150, 8


@pytest.fixture
def procos(tmp_path: Path) -> Procos:
    return Procos(tmp_path / "home")


@pytest.fixture
def source(tmp_path: Path) -> str:
    uri = f"faiss:{tmp_path / 'source'}?index=flat"
    api.seed_store(uri, COUNT, DIM)
    return uri


def run_in(procos: Procos, cwd: Path, *args: str, user: str | None = None, environment: str | None = None,
           env: dict | None = None) -> subprocess.CompletedProcess:
    full = procos.env_for(("--as", user) if user else (), environment) | (env or {})
    return subprocess.run(procos.argv(*args), env=full, cwd=cwd, capture_output=True, text=True, timeout=180)


# --- outcomes and exit codes ------------------------------------------------------------------------


def test_each_outcome_has_its_exit_code_and_is_in_the_final_event(procos: Procos, source: str, tmp_path: Path):
    other = f"faiss:{tmp_path / 'other'}?index=flat"
    api.seed_store(other, COUNT, DIM, seed=9)
    ok = procos.start("validate_snapshot", "alice", source=source, target=source, queries=5, k=3)
    assert (ok["state"], ok["outcome"], ok["exit_code"]) == ("completed", "succeeded", 0)
    failed = procos.start("validate_snapshot", "alice", code=4, source=source, target=other, queries=5, k=3)
    assert (failed["state"], failed["outcome"]) == ("completed", "failed")
    started = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out", environment="prod")
    [task] = procos.json("task", "list", "--as", "bob")
    rejected = procos.json("task", "complete", task["task_id"], "--as", "bob", "--reject", code=0)
    assert (rejected["outcome"], rejected["exit_code"]) == ("rejected", 0)  # the approver chose it: 0
    (tmp_path / "blocked").write_text("a file where the out folder should be")
    error = procos.start("export_snapshot", "alice", code=1, source=source, out_dir=tmp_path / "blocked")
    assert (error["state"], error["outcome"]) == ("error", "error")
    finished = {e["instance_id"]: e for e in procos.events(finished=True) if e["event"] == "instance_finished"}
    assert {iid: finished[iid]["outcome"] for iid in finished} == {
        ok["instance_id"]: "succeeded", failed["instance_id"]: "failed", started["instance_id"]: "rejected",
        error["instance_id"]: "error"}
    listed = {i["instance_id"]: i["outcome"] for i in procos.json("instance", "list")}
    assert listed[started["instance_id"]] == "rejected" and listed[error["instance_id"]] == "error"
    table = procos.run("instance", "list").stdout.splitlines()
    assert table[0].split()[:4] == ["INSTANCE", "PROCESS", "STATE", "OUTCOME"]


def test_a_drill_that_fails_exits_4_with_outcome_failed(procos: Procos, tmp_path: Path):
    source = f"faiss:{tmp_path / 'busy'}?index=flat"
    api.seed_store(source, COUNT, DIM)
    stop = threading.Event()

    def keep_writing() -> None:  # the source keeps changing: the restored copy cannot match it
        from engine.records import EmbeddingRecord
        from engine.repository import open_repository

        repo = open_repository(source)
        n = 0
        while not stop.is_set():
            repo.upsert([EmbeddingRecord(f"new-{n:06d}", [1.0] * (DIM - 1) + [float(n + 1)], {})])
            n += 1
            time.sleep(0.02)
        repo.close()

    writer = threading.Thread(target=keep_writing, daemon=True)
    writer.start()
    try:
        drill = procos.start("simulate_restore", "alice", code=4, source=source, out_dir=tmp_path / "drill")
    finally:
        stop.set()
        writer.join(timeout=10)
    assert (drill["outcome"], drill["data"]["passed"]) == ("failed", False)
    report = json.loads(Path(drill["data"]["report"]).read_text())
    assert report["passed"] is False and report["validation"]["passed"] is False


def _sigint_at_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_leaves_the_instance_interrupted_and_says_how_to_resume(procos: Procos, source: str,
                                                                                  tmp_path: Path, sig):
    out = tmp_path / "out"
    argv = procos.argv("process", "start", "export_snapshot", "--as", "alice", "--var", f"source={source}",
                       "--var", f"out_dir={out}")
    lock = sqlite3.connect(Path(source.removeprefix("faiss:").split("?")[0]) / "store.sqlite", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")  # "Set the freeze flag" waits on this lock until the signal comes
    # A terminal's Ctrl-C reaches a foreground command whose SIGINT is at its default. A test run started in the
    # background of a non-interactive shell inherits SIGINT ignored (POSIX), and the runner would then rightly
    # ignore it too; the runner is therefore started with SIGINT at its default, as a terminal would start it.
    runner = subprocess.Popen(argv, env=procos.env_for(tuple(argv)), cwd=ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, preexec_fn=_sigint_at_default)
    try:
        iid = wait_for_script_start(procos.home, "Task_freeze")
        time.sleep(0.3)
        runner.send_signal(sig)
        _, err = runner.communicate(timeout=60)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
        if runner.poll() is None:
            runner.kill()
    assert runner.returncode == 130, err
    assert f"procos instance retry {iid}" in err and len(err.strip().splitlines()) == 2
    shown = procos.show(iid)
    assert shown["state"] == "interrupted" and shown["exit_code"] == 130
    assert any(h["kind"] == "interrupted" for h in shown["history"])
    again = procos.json("instance", "retry", iid, "--as", "alice")
    assert again["state"] == "completed" and again["outcome"] == "succeeded"


# --- shared state and paths ---------------------------------------------------------------------------


def test_the_default_home_is_per_user_and_relative_paths_work_across_folders(tmp_path: Path):
    from workflow_support import seed_users

    xdg = tmp_path / "xdg"
    home = xdg / "procos"
    tokens = seed_users({"alice": ["Owner"], "bob": ["Approver"]}, home=home)
    env = {k: v for k, v in os.environ.items() if k not in ("PROCOS_HOME", "PROCOS_TOKEN")}
    env |= {"XDG_DATA_HOME": str(xdg), "PROCOS_ENV": "prod"}
    starter, approver = tmp_path / "alice-work", tmp_path / "bob-desk"
    starter.mkdir()
    approver.mkdir()
    api.seed_store(f"faiss:{starter / 'kb'}?index=flat", COUNT, DIM)

    def run(cwd: Path, user: str, *args: str) -> dict:
        done = subprocess.run([sys.executable, "-m", "engine.cli", *args, "--json"], cwd=cwd, capture_output=True,
                              text=True, env=env | {"PROCOS_TOKEN": tokens[user], "PYTHONPATH": str(ROOT)},
                              timeout=180)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    started = run(starter, "alice", "process", "start", "export_snapshot", "--var", "source=faiss:./kb",
                  "--var", "out_dir=./snapshots")
    assert started["data"]["source"] == f"faiss:{starter / 'kb'}"
    assert started["data"]["out_dir"] == str(starter / "snapshots")
    [task] = run(approver, "bob", "task", "list")  # another folder, the same (per-user default) state
    done = run(approver, "bob", "task", "complete", task["task_id"], "--approve")
    assert Path(done["data"]["bundle"]).parent == starter / "snapshots"
    assert not (starter / ".procos").exists() and not (approver / ".procos").exists()
    assert (home / "state.db").is_file()
    shown = run(tmp_path, "alice", "config", "show")
    assert shown["home"] == {"value": str(home), "source": "default", "env": "PROCOS_HOME"}


def test_config_show_says_where_each_value_came_from(procos: Procos, tmp_path: Path):
    (procos.home / "config.yaml").write_text("environment: dev\nwebhook_url: https://u:pw@hooks.example/x\n"
                                             "trusted_keys: [AAAA]\n")
    shown = json.loads(run_in(procos, tmp_path, "config", "show", "--json",
                              env={"PROCOS_TRUSTED_KEYS": "BBBB,CCCC"}).stdout)
    assert shown["environment"]["source"].startswith("env PROCOS_ENV")  # the suite's PROCOS_ENV=dev wins
    assert shown["trusted_keys"] == {"value": ["BBBB", "CCCC"], "source": "env PROCOS_TRUSTED_KEYS",
                                     "env": "PROCOS_TRUSTED_KEYS"}
    assert shown["webhook_url"]["source"] == f"file {procos.home / 'config.yaml'}"
    assert shown["webhook_url"]["value"] == "https://u:***@hooks.example/x"
    assert shown["state_dsn"]["source"] == "default"
    bad = run_in(procos, tmp_path, "config", "show", env={"PROCOS_ENV": "staging"})
    assert bad.returncode == 2 and "not dev or prod" in bad.stderr


# --- processes refuse bad requests before they exist --------------------------------------------------------


def test_missing_unknown_and_wrong_variables_create_no_instance(procos: Procos, source: str, tmp_path: Path):
    cases = {
        "missing": (["--var", f"source={source}"], "missing required variable 'out_dir'"),
        "unknown": (["--var", f"source={source}", "--var", "out_dir=x", "--var", "outdir=y"],
                    "unknown variable 'outdir'"),
        "wrong type": (["--var", f"source={source}", "--var", "out_dir=x", "--var", "compression_level=high"],
                       "compression_level: expected a whole number"),
        "unreadable": (["--var", f"source={source}", "--var", "out_dir=x", "--var", f"artifacts_dir={tmp_path}/nope"],
                       "does not exist"),
        "no store": (["--var", f"source=faiss:{tmp_path}/nostore", "--var", "out_dir=x"], "no store at"),
        "bad uri": (["--var", "source=ftp://x", "--var", "out_dir=x"], "unknown store URI"),
    }
    for name, (args, message) in cases.items():
        done = run_in(procos, tmp_path, "process", "start", "export_snapshot", *args, user="alice")
        assert done.returncode == 2, f"{name}: {done.returncode} {done.stderr}"
        assert message in done.stderr and "nothing was started" in done.stderr, name
    assert procos.json("instance", "list") == []
    shown = json.loads(run_in(procos, tmp_path, "process", "show", "export_snapshot", "--json").stdout)
    names = {v["name"]: v for v in shown["variables"]}
    assert names["source"]["required"] and not names["pack"]["required"] and names["compression_level"]["default"] == 1
    text = run_in(procos, tmp_path, "process", "show", "import_snapshot").stdout
    assert "VARIABLE" in text and "on_conflict" in text and "role Owner" in text


def test_retry_var_fixes_a_mistyped_out_dir_without_a_new_instance(procos: Procos, source: str, tmp_path: Path):
    (tmp_path / "typo").write_text("not a folder")
    failed = procos.start("export_snapshot", "alice", code=1, source=source, out_dir=tmp_path / "typo")
    bad = run_in(procos, tmp_path, "instance", "retry", failed["instance_id"], "--var", "out_dr=x", user="alice")
    assert bad.returncode == 2 and "unknown variable 'out_dr'" in bad.stderr
    fixed = json.loads(run_in(procos, tmp_path, "instance", "retry", failed["instance_id"], "--var", "out_dir=./good",
                              "--as", "alice", "--json", user="alice").stdout)
    assert fixed["state"] == "completed" and Path(fixed["data"]["bundle"]).parent == tmp_path / "good"
    [changed] = [h for h in procos.show(failed["instance_id"])["history"] if h["kind"] == "variables_changed"]
    assert changed["by"] == "alice" and changed["changes"]["out_dir"]["to"] == str(tmp_path / "good")
    assert len(procos.json("instance", "list")) == 1


def test_an_export_leaves_a_pre_paused_store_paused_on_every_path(procos: Procos, source: str, tmp_path: Path):
    api.pause_ingestion(source)
    done = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out")
    assert done["state"] == "completed" and api.is_paused(source)
    (tmp_path / "blocked").write_text("x")
    failed = procos.start("export_snapshot", "alice", code=1, source=source, out_dir=tmp_path / "blocked")
    assert failed["state"] == "error" and api.is_paused(source)
    procos.run("instance", "cancel", failed["instance_id"], "--as", "alice")
    assert api.is_paused(source)
    waiting = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out2", environment="prod")
    procos.run("instance", "cancel", waiting["instance_id"], "--as", "alice")
    assert api.is_paused(source)
    api.resume_ingestion(source)
    done = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out3")
    assert done["state"] == "completed" and not api.is_paused(source)  # a store it paused itself: cleared


# --- output a person reads ----------------------------------------------------------------------------


def test_instance_show_is_a_summary_with_short_lines(procos: Procos, source: str, tmp_path: Path):
    started = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out", environment="prod")
    iid = started["instance_id"]
    waiting = procos.run("instance", "show", iid).stdout
    [task] = procos.json("task", "list", "--as", "bob")
    assert "state      waiting" in waiting and f"task {task['task_id']}" in waiting and "by alice" in waiting
    assert f"procos task complete {task['task_id']}" in waiting
    listed = procos.run("task", "list", "--as", "bob").stdout
    assert listed.splitlines()[0].split()[:3] == ["TASK", "PROCESS", "STARTED"] and f"{COUNT:,} records" in listed
    shown_task = procos.run("task", "show", task["task_id"]).stdout
    assert "four eyes" in shown_task and str(COUNT) in shown_task
    procos.run("task", "complete", task["task_id"], "--as", "bob", "--approve")
    done = procos.run("instance", "show", iid, "--history").stdout
    assert "outcome succeeded" in done and "duration" in done and "result" in done and "bundle" in done
    assert "TIME" in done and "user_action" in done
    (tmp_path / "x").write_text("x")
    failed = procos.start("export_snapshot", "alice", code=1, source=source, out_dir=tmp_path / "x")
    broken = procos.run("instance", "show", failed["instance_id"]).stdout
    assert "error" in broken and f"procos instance retry {failed['instance_id']}" in broken
    for text in (waiting, listed, shown_task, done, broken):
        assert max(len(line) for line in text.splitlines()) <= 120
        assert "{" not in text.replace("{}", "")  # no JSON blobs


def test_follow_prints_history_until_the_instance_stops_running(procos: Procos, source: str, tmp_path: Path):
    started = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out", environment="prod")
    iid = started["instance_id"]
    follower = subprocess.Popen(procos.argv("instance", "show", iid, "--follow", "--interval", "0.2"),
                                env=procos.env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    time.sleep(2)
    assert follower.poll() is None  # still waiting: still following
    [task] = procos.json("task", "list", "--as", "bob")
    procos.run("task", "complete", task["task_id"], "--as", "bob", "--approve")
    out, _ = follower.communicate(timeout=60)
    assert follower.returncode == 0 and "user_action" in out and "Task_announce" in out
    assert "outcome succeeded" in out.splitlines()[-8:] or "outcome succeeded" in out


def test_import_dry_run_plans_what_the_import_then_does(tmp_path: Path):
    from engine.records import EmbeddingRecord
    from engine.repository import open_repository

    src = f"faiss:{tmp_path / 'src'}?index=flat"
    api.seed_store(src, COUNT, DIM)
    bundle = api.export_snapshot(src, tmp_path / "snaps")["path"]
    target = f"faiss:{tmp_path / 'target'}?index=flat"
    new = api.import_snapshot(bundle, target, dry_run=True)
    assert (new["target_exists"], new["would_create"], new["would_insert"]) == (False, True, COUNT)
    assert not (tmp_path / "target").exists()
    api.seed_store(target, 40, DIM, artifacts=False)  # rec-0000001..40, version 1: ties keep the stored record
    repo = open_repository(target)
    first = repo.fetch(["rec-0000001"])[0]
    repo.delete(["rec-0000001"])
    repo.upsert([EmbeddingRecord("rec-0000001", first.vector, first.metadata, version=0)])  # older than the bundle
    repo.upsert([EmbeddingRecord("extra-1", first.vector, {}, version=1)])
    repo.close()
    for mode in ("append", "replace"):
        plan = api.import_snapshot(bundle, target, mode=mode, dry_run=True)
        assert plan["target_exists"] and not plan["would_create"]
        if mode == "append":
            assert (plan["would_insert"], plan["would_replace"], plan["would_skip"]) == (COUNT - 40, 1, 39)
            done = api.import_snapshot(bundle, target, mode=mode)
            assert done["imported"] == plan["would_insert"] + plan["would_replace"]
            assert done["skipped"] == plan["would_skip"]
        else:
            assert (plan["would_insert"], plan["would_replace"], plan["would_delete"]) == (0, COUNT, 1)
            done = api.import_snapshot(bundle, target, mode=mode)
            assert done["imported"] == COUNT and api.store_stats(target)["count"] == COUNT
    cli = subprocess.run([sys.executable, "-m", "engine.cli", "snapshot", "import", bundle,
                          f"postgresql+embedded:{tmp_path / 'pg-never'}", "--dry-run", "--json"], cwd=ROOT,
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and json.loads(cli.stdout)["would_create"] is True
    assert not (tmp_path / "pg-never").exists()  # no store, folder or server created


def test_snapshot_inspect_json_has_size_age_signed_encrypted_parent(tmp_path: Path):
    src = f"faiss:{tmp_path / 'src'}?index=flat"
    api.seed_store(src, 30, DIM)
    full = api.export_snapshot(src, tmp_path / "snaps", pack=True)
    delta = api.export_delta(src, full["path"], tmp_path / "snaps")
    out = subprocess.run([sys.executable, "-m", "engine.cli", "snapshot", "inspect", delta["path"], "--json"],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    described = json.loads(out.stdout)
    assert described["kind"] == "delta" and described["parent"]["snapshot_id"] == full["snapshot_id"]
    assert described["bytes"] > 0 and described["age_seconds"] >= 0
    assert described["signed"] is False and described["encrypted"] is False
    packed = api.describe_snapshot(full["path"] + ".tar.zst")
    assert packed["packed"] and packed["signed"] is False and packed["parent"] is None


# --- help, quiet, colour, completion, man page ---------------------------------------------------------------


def walk_commands():
    import click

    from engine.cli import cli

    ctx = click.Context(cli)

    def walk(group, path):
        for name in group.list_commands(ctx):
            cmd = group.get_command(ctx, name)
            yield path + [name], cmd
            if isinstance(cmd, click.Group):
                yield from walk(cmd, path + [name])

    return list(walk(cli, []))


def test_every_command_has_an_example_exit_codes_and_quiet_verbose():
    from click.testing import CliRunner

    from engine.cli import cli

    commands = walk_commands()
    assert len(commands) > 30
    for path, _ in commands:
        shown = CliRunner().invoke(cli, [*path, "--help"])
        assert shown.exit_code == 0, path
        assert "Example" in shown.output, f"procos {' '.join(path)} --help has no example"
        assert "Exit codes" in shown.output and "130" in shown.output, path
        assert "-q, --quiet" in shown.output and "-v, --verbose" in shown.output, path
    top = CliRunner().invoke(cli, ["--help"]).output
    assert all(str(code) in top for code in (0, 1, 2, 3, 4, 75, 77, 130))


def test_quiet_colour_completion_and_the_man_page(tmp_path: Path):
    from click.testing import CliRunner

    from engine.cli import cli

    uri = f"faiss:{tmp_path / 's'}?index=flat"
    api.seed_store(uri, 10, DIM)
    assert CliRunner().invoke(cli, ["store", "stats", uri, "-q"]).output == ""
    assert json.loads(CliRunner().invoke(cli, ["-q", "store", "stats", uri, "--json"]).output)["count"] == 10
    bundle = api.export_snapshot(uri, tmp_path / "b")["path"]
    plain = CliRunner().invoke(cli, ["snapshot", "verify", bundle], color=True).output  # not a terminal
    assert "\x1b[" not in plain and plain.startswith("OK")
    for shell in ("bash", "zsh", "fish"):
        script = CliRunner().invoke(cli, ["completion", shell])
        assert script.exit_code == 0 and "_PROCOS_COMPLETE" in script.output
    stale = subprocess.run([sys.executable, "tools/build_manpage.py", "--check"], cwd=ROOT, capture_output=True,
                           text=True)
    assert stale.returncode == 0, stale.stdout
    page = (ROOT / "docs" / "man" / "procos.1").read_text()
    assert all(f".SS procos {' '.join(path)}" in page for path, _ in walk_commands())


def test_colour_on_a_terminal_only_and_never_with_no_color(tmp_path: Path):
    import shutil

    if shutil.which("script") is None:
        pytest.skip("needs script(1) to give the command a terminal")
    uri = f"faiss:{tmp_path / 's'}?index=flat"
    api.seed_store(uri, 10, DIM)
    bundle = api.export_snapshot(uri, tmp_path / "b")["path"]
    command = f"{sys.executable} -m engine.cli snapshot verify {bundle}"

    def on_a_terminal(**extra: str) -> str:
        env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"} | extra
        return subprocess.run(["script", "-qec", command, "/dev/null"], capture_output=True, text=True, env=env,
                              cwd=ROOT, timeout=60).stdout

    assert "\x1b[" in on_a_terminal()
    assert "\x1b[" not in on_a_terminal(NO_COLOR="1") and "OK" in on_a_terminal(NO_COLOR="1")
