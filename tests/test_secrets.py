"""No secret at rest: a store password, in either URI form, is never written or printed anywhere.

The session's embedded PostgreSQL gets a role that must authenticate with a password (scram-sha-256 on
the Unix socket, by a pg_hba.conf line added for this role only), so the tests also prove that a
process waiting for approval gets its password back from the runner's environment (``PGPASSWORD``,
``?password_env=NAME``) and not from stored data. After export, import, validation, a DR drill and a
failing run, every byte under PROCOS_HOME, the output folders and every command's output is searched.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.test_processes_e2e import ROOT, Procos

COUNT, DIM = 150, 8


@pytest.fixture(scope="module")
def pw_role(pg_server):
    """``(role, password, socket dir)`` of a role that must give its password, owning its own database
    (pgvector installed there by the superuser, as a DBA would); removed afterwards."""
    import psycopg

    if pg_server.datadir is None:
        pytest.skip("needs the embedded server (its pg_hba.conf is changed for one role)")
    role = f"kb_{uuid.uuid4().hex[:8]}"
    password = f"Pw-{uuid.uuid4().hex}"
    socket = parse_qs(urlsplit(pg_server.dsn).query)["host"][0]
    hba = pg_server.datadir / "pg_hba.conf"
    original = hba.read_text()
    hba.write_text(f"local all {role} scram-sha-256\n" + original)
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {role} OWNER {role}")
        conn.execute("SELECT pg_reload_conf()")
    with psycopg.connect(pg_server.dsn.replace("/postgres?", f"/{role}?"), autocommit=True) as conn:
        conn.execute("CREATE EXTENSION vector")
    yield role, password, socket
    hba.write_text(original)
    with psycopg.connect(pg_server.dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_reload_conf()")
        conn.execute(f"DROP DATABASE {role} WITH (FORCE)")
        conn.execute(f"DROP ROLE {role}")


def userinfo_uri(role: str, password: str, socket: str, table: str) -> str:
    return f"postgresql://{role}:{password}@/{role}?host={socket}&table={table}"


def param_uri(role: str, password: str, socket: str, table: str) -> str:
    return f"postgresql://{role}@/{role}?host={socket}&password={password}&table={table}"


def every_byte_mentions(secret: str, *roots: Path) -> list[str]:
    hits = []
    for root in roots:
        for path in [root, *root.rglob("*")] if root.exists() else []:
            if path.is_file() and secret.encode() in path.read_bytes():
                hits.append(str(path))
    return hits


def test_the_password_must_really_be_given(pw_role):
    from engine.errors import StoreError
    from engine.repository import open_repository

    role, password, socket = pw_role
    with pytest.raises(StoreError) as info:
        open_repository(f"postgresql://{role}@/{role}?host={socket}&table=t_nopw", create=True)
    assert "PGPASSWORD" in (info.value.hint or "")
    open_repository(userinfo_uri(role, password, socket, "t_pw"), create=True).close()


@pytest.mark.parametrize("form", ["userinfo", "param"])
def test_no_password_is_persisted_or_printed_by_any_operation(pw_role, tmp_path: Path, form: str):
    from engine import api

    role, password, socket = pw_role
    make = userinfo_uri if form == "userinfo" else param_uri
    suffix = uuid.uuid4().hex[:6]
    source = make(role, password, socket, f"src_{suffix}")
    target = make(role, password, socket, f"dst_{suffix}")
    api.seed_store(source + "&index=flat", COUNT, DIM)
    procos = Procos(tmp_path / "home")
    outputs: list[str] = []

    def run(*args: str, code: int = 0, extra: dict | None = None, environment: str | None = None) -> str:
        env = procos.env_for(args, environment) | (extra or {})
        done = subprocess.run(procos.argv(*args), env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == code, f"{args}: {done.returncode}\n{done.stdout}\n{done.stderr}"
        return done.stdout

    # direct commands: the password is in the URI the operator typed, and nowhere else afterwards
    bundle = json.loads(run("snapshot", "export", source, "--out", str(tmp_path / "snaps"), "--json"))["path"]
    run("snapshot", "import", bundle, target, "--json")
    run("validate", source, target, "--json", "--report", str(tmp_path / "reports" / "v.md"))
    run("drift", "check", target, "--snapshot", bundle, "--json")
    run("store", "stats", "postgresql://nobody:wrong-" + password + "@/postgres?host=/nonexistent&table=x", code=1)

    # processes: a prod export waits for approval; the approver's runner has the password, not the instance
    started = json.loads(run("process", "start", "export_snapshot", "--var", f"source={source}",
                             "--var", f"out_dir={tmp_path / 'psnaps'}", "--as", "carol", "--json",
                             environment="prod"))
    assert started["state"] == "waiting" and password not in json.dumps(started)
    [task] = json.loads(run("task", "list", "--as", "bob", "--json"))
    denied = json.loads(run("task", "complete", task["task_id"], "--as", "bob", "--approve", "--json", code=1))
    assert denied["state"] == "error"  # this runner was not given the password: a failing run
    done = json.loads(run("instance", "retry", started["instance_id"], "--as", "carol", "--json",
                          extra={"PGPASSWORD": password}))
    assert done["state"] == "completed", done
    via_env = source.replace(f":{password}@", "@").replace(f"&password={password}", "") + "&password_env=KB_PW"
    env_run = json.loads(run("process", "start", "simulate_restore", "--var", f"source={via_env}",
                             "--var", f"out_dir={tmp_path / 'drill'}", "--as", "alice", "--json",
                             extra={"KB_PW": password}))
    assert env_run["state"] == "completed", env_run
    drill = json.loads(run("process", "start", "simulate_restore", "--var", f"source={source}",
                           "--var", f"out_dir={tmp_path / 'drill2'}", "--as", "alice", "--json"))
    assert drill["state"] == "completed", drill  # the starting run borrowed the password it was given
    imported = json.loads(run("process", "start", "import_snapshot", "--var", f"bundle={bundle}",
                              "--var", f"target={target}", "--var", "mode=replace", "--as", "alice", "--json",
                              extra={"PGPASSWORD": password}))
    assert imported["state"] == "completed", imported
    validated = json.loads(run("process", "start", "validate_snapshot", "--var", f"source={source}",
                               "--var", f"target={target}", "--as", "alice", "--json"))
    assert validated["state"] == "completed"

    assert [i for i, text in enumerate(outputs) if password in text] == []
    leaks = every_byte_mentions(password, procos.home, tmp_path / "snaps", tmp_path / "psnaps",
                                tmp_path / "drill", tmp_path / "drill2", tmp_path / "reports")
    assert leaks == []
    shown = procos.show(started["instance_id"])
    assert any(h["kind"] == "secrets_removed" and h["variables"] == ["source"] for h in shown["history"])
    assert ":***@" in shown["data"]["source"] or "password=***" in shown["data"]["source"]
    manifest = json.loads((Path(bundle) / "manifest.json").read_text())
    assert password not in manifest["source_uri"] and role in manifest["source_uri"]
    assert os.environ.get("PGPASSWORD") is None
