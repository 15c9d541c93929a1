"""Identities and approvals that hold: each test attempts a bypass through the CLI and checks it fails.

Every command is a fresh ``procos`` process. A user acts with their own token in ``PROCOS_TOKEN``;
``Procos.run(..., token=...)`` lets a test run with any token (or none: the login name).
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.crypto_support import make_keyring
from tests.test_processes_e2e import ROOT, Procos

COUNT, DIM = 120, 8


@pytest.fixture(scope="module")
def keyring():
    yield from make_keyring()


def trusting(procos: Procos, keyring, *, signing: bool = False) -> None:
    """Make every later command of ``procos`` trust the keyring's signer (and sign with it)."""
    procos.env.update(GNUPGHOME=str(keyring.home), PROCOS_TRUSTED_KEYS=keyring.signer)
    if signing:
        procos.env["PROCOS_SIGNING_KEY"] = keyring.signer


@pytest.fixture
def procos(tmp_path: Path) -> Procos:
    return Procos(tmp_path / "home")


@pytest.fixture
def source(tmp_path: Path) -> str:
    from engine import api

    uri = f"faiss:{tmp_path / 'source'}?index=flat"
    api.seed_store(uri, COUNT, DIM)
    return uri


def call(procos: Procos, *args: str, token: str | None = None, environment: str | None = None,
         code: int | None = None) -> subprocess.CompletedProcess:
    env = procos.env_for((), environment)
    env.pop("PROCOS_TOKEN", None)
    if token:
        env["PROCOS_TOKEN"] = token
    done = subprocess.run(procos.argv(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    if code is not None:
        assert done.returncode == code, f"{args} -> {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def audit(procos: Procos) -> list[dict]:
    from engine.workflow.identity import login_name

    return json.loads(call(procos, "audit", "--json", token=procos.tokens[login_name()], code=0).stdout)


# --- identity ------------------------------------------------------------------------------------


def test_as_another_user_is_refused_and_audited(procos: Procos, source: str, tmp_path: Path):
    done = call(procos, "process", "start", "export_snapshot", "--var", f"source={source}",
                "--var", f"out_dir={tmp_path / 'out'}", "--as", "carol", token=procos.tokens["alice"], code=77)
    assert "authenticated as 'alice'" in done.stderr and "carol's own token" in done.stderr
    assert procos.json("instance", "list") == []  # nothing was started
    [entry] = [e for e in audit(procos) if e["kind"] == "refused"]
    assert entry["by"] == "alice" and entry["asserted"] == "carol" and "start export_snapshot" in entry["action"]


def test_without_a_token_the_login_name_acts_and_holds_no_role_unless_it_is_a_user(tmp_path: Path, source: str):
    from workflow_support import seed_users

    home = tmp_path / "bare"
    procos = Procos.__new__(Procos)  # a home whose store does not know the login name
    procos.home, procos.tokens = home, seed_users({"alice": ["Owner"]}, home=home)
    procos.env = {k: v for k, v in os.environ.items() if k != "PROCOS_TOKEN"} | {"PROCOS_HOME": str(home)}
    from engine.workflow import WorkflowService
    from engine.workflow.identity import login_name
    from engine.workflow.settings import load_settings

    svc = WorkflowService(load_settings({"PROCOS_HOME": str(home)}))
    svc.store.remove_user(login_name())
    svc.close()
    done = call(procos, "process", "start", "export_snapshot", "--var", f"source={source}",
                "--var", f"out_dir={tmp_path / 'out'}", code=77)
    assert f"'{login_name()}' is not a user of the store" in done.stderr
    assert json.loads(call(procos, "task", "list", "--json", code=0).stdout) == []  # no role, no task


def test_an_unknown_or_revoked_token_is_refused(procos: Procos):
    old = procos.tokens["bob"]
    call(procos, "task", "list", "--json", token=old, code=0)
    new = json.loads(call(procos, "user", "token", "bob", "--json", token=old, code=0).stdout)["token"]
    assert new != old and new.startswith("pcs_")
    refused = call(procos, "task", "list", token=old, code=77)
    assert "not valid" in refused.stderr and old not in refused.stderr
    call(procos, "task", "list", token=new, code=0)
    call(procos, "task", "list", token="pcs_made-up", code=77)


def test_a_token_of_a_user_without_the_role_is_refused(procos: Procos, source: str, tmp_path: Path):
    out = tmp_path / "out"
    no_owner = call(procos, "process", "start", "export_snapshot", "--var", f"source={source}",
                    "--var", f"out_dir={out}", token=procos.tokens["bob"], environment="prod", code=77)
    assert "needs the 'Owner' role" in no_owner.stderr
    started = json.loads(call(procos, "process", "start", "export_snapshot", "--var", f"source={source}",
                              "--var", f"out_dir={out}", "--json", token=procos.tokens["alice"],
                              environment="prod", code=0).stdout)
    [task] = json.loads(call(procos, "task", "list", "--json", token=procos.tokens["bob"], code=0).stdout)
    assert task["instance_id"] == started["instance_id"]
    refused = call(procos, "task", "complete", task["task_id"], "--approve", token=procos.tokens["alice"], code=77)
    assert "lacks role 'Approver'" in refused.stderr
    starter = call(procos, "task", "complete", task["task_id"], "--approve", token=procos.tokens["carol"], code=0)
    assert json.loads(call(procos, "instance", "show", started["instance_id"], "--json", code=0).stdout)[
        "state"] == "completed", starter.stdout


def test_the_starter_cannot_approve_in_prod_whatever_roles_they_hold(procos: Procos, source: str, tmp_path: Path):
    started = json.loads(call(procos, "process", "start", "export_snapshot", "--var", f"source={source}",
                              "--var", f"out_dir={tmp_path / 'out'}", "--json", token=procos.tokens["carol"],
                              environment="prod", code=0).stdout)
    from engine.workflow import WorkflowService
    from engine.workflow.settings import load_settings

    svc = WorkflowService(load_settings({"PROCOS_HOME": str(procos.home)}))
    [task] = [t.task_id for t in svc.store.list_tasks()]
    svc.close()
    own = call(procos, "task", "complete", task, "--approve", token=procos.tokens["carol"], code=77)
    assert "separation of duties" in own.stderr
    assert not (tmp_path / "out").exists()
    shown = json.loads(call(procos, "instance", "show", started["instance_id"], "--json", code=0).stdout)
    assert shown["state"] == "waiting"
    assert [h["by"] for h in shown["history"] if h["kind"] == "refused"] == ["carol"]


def test_the_environment_is_the_deployments_not_the_requests(procos: Procos, source: str, tmp_path: Path):
    out = tmp_path / "out"
    done = call(procos, "process", "start", "export_snapshot", "--var", f"source={source}", "--var", f"out_dir={out}",
                "--var", "environment=dev", token=procos.tokens["alice"], environment="prod", code=2)
    assert "deployment's environment is 'prod'" in done.stderr
    assert procos.json("instance", "list") == [] and not out.exists()
    unset = procos.env_for(())
    unset.pop("PROCOS_ENV", None)
    unset["PROCOS_TOKEN"] = procos.tokens["alice"]
    waited = subprocess.run(procos.argv("process", "start", "export_snapshot", "--var", f"source={source}",
                                        "--var", f"out_dir={out}", "--json"), env=unset, cwd=ROOT,
                            capture_output=True, text=True, timeout=120)
    result = json.loads(waited.stdout)
    assert result["state"] == "waiting" and result["data"]["environment"] == "prod"  # unset means prod
    (procos.home / "config.yaml").write_text("environment: dev\n")
    unset.pop("PROCOS_ENV", None)
    from_file = subprocess.run(procos.argv("process", "start", "export_snapshot", "--var", f"source={source}",
                                           "--var", f"out_dir={out}", "--json"), env=unset, cwd=ROOT,
                               capture_output=True, text=True, timeout=120)
    assert json.loads(from_file.stdout)["state"] == "completed"  # the deployment's config file says dev


# --- approvals bound to what was approved ---------------------------------------------------------------


def test_a_bundle_swapped_after_approval_is_refused_before_anything_is_written(procos: Procos, tmp_path: Path,
                                                                              keyring, monkeypatch):
    from engine import api

    good = f"faiss:{tmp_path / 'good'}?index=flat"
    other = f"faiss:{tmp_path / 'other'}?index=flat"
    api.seed_store(good, COUNT, DIM, seed=1)
    api.seed_store(other, COUNT, DIM, seed=2)
    bundle = Path(api.export_snapshot(good, tmp_path / "snaps")["path"])
    swap = Path(api.export_snapshot(other, tmp_path / "other_snaps")["path"])
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    for b in (bundle, swap):  # both validly signed by a trusted key: the signature alone cannot tell them apart
        api.sign_snapshot(b, keyring.signer)
    trusting(procos, keyring)
    target = tmp_path / "target"
    started = procos.start("import_snapshot", "carol", bundle=bundle, target=f"faiss:{target}", environment="prod")
    assert started["state"] == "waiting"
    [task] = procos.json("task", "list", "--as", "bob")
    approved_hash = procos.show(started["instance_id"])["data"]["content_hash"]
    assert approved_hash == api.verify_snapshot(bundle)["manifest"]["content_hash"]
    shutil.rmtree(bundle)
    shutil.copytree(swap, bundle)  # a valid bundle, just not the approved one
    failed = procos.json("task", "complete", task["task_id"], "--as", "bob", "--approve", code=3)
    assert failed["state"] == "error"
    shown = procos.show(started["instance_id"])
    assert "not the one approved" in shown["error"] and approved_hash in shown["error"]
    assert not target.exists()  # nothing loaded, nothing created
    assert [e["event"] for e in procos.events()] == ["process_failed"]


def test_a_prod_import_of_an_unsigned_bundle_never_reaches_an_approver(procos: Procos, tmp_path: Path, keyring):
    from engine import api

    source = f"faiss:{tmp_path / 'src'}?index=flat"
    api.seed_store(source, COUNT, DIM)
    bundle = api.export_snapshot(source, tmp_path / "snaps")["path"]
    trusting(procos, keyring)
    failed = procos.start("import_snapshot", "carol", code=3, bundle=bundle, target=f"faiss:{tmp_path / 't'}",
                          environment="prod")
    assert "no good signature" in procos.show(failed["instance_id"])["error"]
    assert procos.json("task", "list", "--as", "bob") == [] and not (tmp_path / "t").exists()


def test_the_export_process_signs_its_bundle_and_the_drill_its_report(procos: Procos, source: str, tmp_path: Path,
                                                                      keyring):
    trusting(procos, keyring, signing=True)
    done = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out")
    bundle = Path(done["data"]["bundle"])
    assert done["data"]["signature"]["fingerprint"] == keyring.signer
    checked = subprocess.run(["gpg", "--batch", "--homedir", str(keyring.home), "--verify",
                              str(bundle / "checksums.sha256.asc"), str(bundle / "checksums.sha256")],
                             capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    verified = procos.json("snapshot", "verify", str(bundle))
    assert verified["signature"] == {"status": "good", "fingerprint": keyring.signer}
    drill = procos.start("simulate_restore", "alice", source=source, out_dir=tmp_path / "drill")
    report = Path(drill["data"]["report"])
    assert Path(drill["data"]["report_signature"]) == report.with_name(report.name + ".asc")
    assert subprocess.run(["gpg", "--batch", "--homedir", str(keyring.home), "--verify",
                           drill["data"]["report_signature"], str(report)], capture_output=True).returncode == 0


RACER = """
import os, sys, time
from engine.cli import main  # imported before the start signal, so both racers are warm
from engine.api import processes  # noqa: F401
go = sys.argv[1]
while not os.path.exists(go):
    time.sleep(0.0005)
main(sys.argv[2:])
"""


@pytest.mark.parametrize("round_", range(3))
def test_two_approvers_at_the_same_moment_record_exactly_one_decision(tmp_path: Path, round_: int):
    from workflow_support import seed_users

    from engine import api

    source = f"faiss:{tmp_path / 'source'}?index=flat"
    api.seed_store(source, 40, DIM)
    procos = Procos.__new__(Procos)
    procos.home = tmp_path / "home"
    procos.env = {k: v for k, v in os.environ.items() if k != "PROCOS_TOKEN"} | {"PROCOS_HOME": str(procos.home)}
    procos.tokens = seed_users({"olga": ["Owner"], "bob": ["Approver"], "dave": ["Approver"]}, home=procos.home)
    started = procos.start("export_snapshot", "olga", source=source, out_dir=tmp_path / "out", environment="prod")
    [task] = procos.json("task", "list", "--as", "bob")
    go = tmp_path / "go"
    racers = []
    for user, decision in (("bob", "--approve"), ("dave", "--reject")):
        env = dict(procos.env, PROCOS_TOKEN=procos.tokens[user])
        racers.append(subprocess.Popen([sys.executable, "-c", RACER, str(go), "task", "complete", task["task_id"],
                                        decision, "--json"], env=env, cwd=ROOT, stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True))
    time.sleep(1.5)  # both are waiting at the line
    go.touch()
    outcomes = [(p.wait(timeout=120), *p.communicate()) for p in racers]
    codes = sorted(code for code, _, _ in outcomes)
    assert codes[0] == 0 and codes[1] != 0, outcomes
    loser = next(err for code, _, err in outcomes if code != 0)
    assert "already completed" in loser, loser
    shown = procos.show(started["instance_id"])
    actions = [h for h in shown["history"] if h["kind"] == "user_action"]
    assert len(actions) == 1 and shown["state"] == "completed"
    winner = actions[0]["by"]
    assert (winner == "bob") == ("bundle" in shown["data"])  # the recorded decision is the one that ran


# --- the user store --------------------------------------------------------------------------------


def test_user_commands_manage_users_and_tokens(tmp_path: Path):
    home = tmp_path / "fresh"
    env = {k: v for k, v in os.environ.items() if k != "PROCOS_TOKEN"} | {"PROCOS_HOME": str(home)}

    def run(*args: str, token: str | None = None, code: int = 0) -> subprocess.CompletedProcess:
        done = subprocess.run([sys.executable, "-m", "engine.cli", *args], env=env | ({"PROCOS_TOKEN": token} if token
                              else {}), cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert done.returncode == code, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done

    first = run("user", "add", "ops", "--role", "Owner", code=1)
    assert "first user must be an administrator" in first.stderr
    admin = json.loads(run("user", "add", "ops", "--role", "Admin", "--json").stdout)
    assert set(admin) == {"user", "roles", "token"} and admin["roles"] == ["Admin"]
    alice = json.loads(run("user", "add", "alice", "--role", "Owner", "--role", "Approver", "--json",
                           token=admin["token"]).stdout)
    denied = run("user", "add", "eve", "--role", "Admin", token=alice["token"], code=77)
    assert "needs the Admin role" in denied.stderr
    listed = json.loads(run("user", "list", "--json", token=alice["token"]).stdout)
    assert [(u["user"], u["roles"]) for u in listed] == [("alice", ["Approver", "Owner"]), ("ops", ["Admin"])]
    db = (home / "state.db").read_bytes()
    assert alice["token"].encode() not in db and admin["token"].encode() not in db  # hashes only
    token_file = tmp_path / "alice.token"
    token_file.write_text(alice["token"] + "\n")
    token_file.chmod(0o644)
    loose = run("--token-file", str(token_file), "task", "list", code=77)
    assert "can be read by other users" in loose.stderr
    token_file.chmod(0o600)
    run("--token-file", str(token_file), "task", "list")
    run("task", "list", "--token-file", str(token_file))
    run("user", "remove", "alice", token=admin["token"])
    assert "not valid" in run("task", "list", token=alice["token"], code=77).stderr


def test_files_under_procos_home_are_readable_by_their_owner_only(procos: Procos, source: str, tmp_path: Path):
    procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out")
    call(procos, "process", "start", "export_snapshot", "--as", "bob", token=procos.tokens["alice"], code=77)
    found = []
    for path in [procos.home, *procos.home.rglob("*")]:
        mode = stat.S_IMODE(path.stat().st_mode)
        if mode & 0o077:
            found.append(f"{path.relative_to(procos.home.parent)} {oct(mode)}")
    assert not found, found
    assert (procos.home / "state.db").is_file() and (procos.home / "events.jsonl").is_file()
