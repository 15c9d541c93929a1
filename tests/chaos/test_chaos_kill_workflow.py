"""SIGKILL at random moments of the workflow runner during ``export_snapshot`` and ``import_snapshot``.

Each trial starts the process as a user does (``procos process start ... --as alice``, dev:
auto-approved) and kills the runner. Then: an instance that exists is ``interrupted`` (or already
``completed``) and ``procos instance retry`` takes it to ``completed``: the export to a bundle that
verifies and holds the source's content, the import to a target holding exactly the bundle's
records and artifacts. No complete-looking bundle fails verify, the retry leaves no leftovers, and
the freeze flag is clear at the end. A runner killed before it created the instance leaves nothing.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest

from chaos.chaos_support import (
    ROOT,
    answers_queries,
    assert_no_violations,
    bundle_rows,
    calibrate,
    check_snapshots_folder,
    child_env,
    kill_moment,
    run_child,
    store_rows,
    trial,
)
from engine import api
from engine.repository import open_repository
from engine.snapshot.reader import open_bundle, read_artifacts
from engine.snapshot.staging import leftovers
from engine.synthetic import synthetic_artifacts, synthetic_batches

USERS = {"alice": ["Owner", "Approver"]}


@pytest.fixture(scope="module")
def flow(chaos, tmp_path_factory) -> dict:
    from workflow_support import seed_users

    root = tmp_path_factory.mktemp("chaos-workflow")
    home = root / "home"
    home.mkdir()
    tokens = seed_users(USERS, home=home)
    source = f"faiss:{root / 'source'}?index=flat"
    repo = open_repository(source, dimensions=16)
    repo.bulk_load(synthetic_batches(20_000 if chaos.full else 5_000, 16, seed=51, batch_size=10_000))
    for path, data in synthetic_artifacts(51).items():
        repo.artifacts.write(path, data)
    repo.close()
    reference = api.export_snapshot(source, root / "reference")
    rows, _, _ = bundle_rows(reference["path"])
    with open_bundle(reference["path"]) as broot:
        arts = {p: hashlib.sha256(d).hexdigest() for p, d in read_artifacts(broot).items()}
    env = child_env({"PROCOS_HOME": str(home), "PROCOS_TOKEN": tokens["alice"], "PROCOS_ENV": "dev"})
    return {"root": root, "home": home, "env": env, "source": source, "reference": reference, "rows": rows,
            "artifacts": arts}


def instances(home: Path) -> dict[str, str]:
    from engine.workflow import WorkflowService
    from engine.workflow.settings import load_settings

    svc = WorkflowService(load_settings({"PROCOS_HOME": str(home)}))
    try:
        return {row["instance_id"]: row["state"] for row in svc.list_instances()}
    finally:
        svc.close()


def procos(flow: dict, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          env=flow["env"], cwd=ROOT, timeout=600)


NO_INSTANCE = {"no instance": True}


def run_and_retry(t, flow: dict, argv: list[str], duration: float) -> dict | None:
    """Kill the runner at a random moment; retry what it left; return the instance's final data
    (:data:`NO_INSTANCE` when the runner died before creating it, None when the retry failed)."""
    before = instances(flow["home"])
    run = run_child(argv, delay=kill_moment(t, duration), env=flow["env"])
    t.killed = run.killed
    new = {iid: state for iid, state in instances(flow["home"]).items() if iid not in before}
    if not new:
        t.ok(run.killed, "an unkilled runner created no instance")
        t.note("killed_before_the_instance_existed")
        return NO_INSTANCE
    [(iid, state)] = new.items()
    t.note(f"state_after_kill_{state}")
    if not run.killed:
        t.ok(state == "completed", f"the unkilled runner left the instance {state}: {run.stderr[-300:]}")
    else:
        t.ok(state in ("interrupted", "completed"), f"a killed runner left the instance {state}")
    frozen = api.store_stats(flow["source"])
    if frozen["paused"]:
        t.note("source_frozen_after_kill" + ("_stale" if frozen["stale"] else ""))
    if state != "completed":
        done = procos(flow, "instance", "retry", iid, "--as", "alice", "--json")
        if not t.ok(done.returncode == 0, f"instance retry failed: {done.stdout[-300:]} {done.stderr[-300:]}"):
            return None
        result = json.loads(done.stdout)
        if not t.ok(result["state"] == "completed", f"the retried instance is {result['state']}"):
            return None
        data = result["data"]
    else:
        shown = procos(flow, "instance", "show", iid, "--json")
        data = json.loads(shown.stdout)["data"]
    t.ok(not api.store_stats(flow["source"])["paused"], "the source is still frozen after the process completed")
    return data


def test_killed_export_runner_resumes_to_a_verified_bundle(chaos, flow):
    op = "workflow-export"
    root = flow["root"] / op

    def argv(n: int) -> list[str]:
        return ["process", "start", "export_snapshot", "--as", "alice", "--var", f"source={flow['source']}",
                "--var", f"out_dir={root / f'out{n}'}", "--json"]

    duration = calibrate(argv, env=flow["env"], runs=2 if chaos.full else 1)
    expected = flow["reference"]
    for n in chaos.trials(op, full=100, sample=1):
        with trial(chaos, op, n) as t:
            out = root / f"out{n}"
            data = run_and_retry(t, flow, argv(n), duration)
            if data is NO_INSTANCE:
                t.ok(not out.exists() or not any(out.iterdir()), "a runner killed before its instance wrote files")
            elif data is not None:
                t.ok(data.get("content_hash") == expected["content_hash"], "the process's bundle holds other content")
                t.ok(Path(data.get("bundle", "")).parent == out, "the bundle is not in out_dir")
                t.ok(leftovers(out) == [], f"the retried export left {leftovers(out)}")
            check_snapshots_folder(out, t, content_hash=expected["content_hash"], records=expected["record_count"])
    assert_no_violations(chaos, op)


def test_killed_import_runner_resumes_to_exactly_the_bundle(chaos, flow):
    op = "workflow-import"
    root = flow["root"] / op
    bundle = flow["reference"]["path"]

    def argv(n: int) -> list[str]:
        return ["process", "start", "import_snapshot", "--as", "alice", "--var", f"bundle={bundle}",
                "--var", f"target=faiss:{root / f'target{n}'}", "--var", "mode=append", "--json"]

    duration = calibrate(argv, env=flow["env"], runs=2 if chaos.full else 1)
    for n in chaos.trials(op, full=100, sample=1):
        with trial(chaos, op, n) as t:
            target = root / f"target{n}"
            data = run_and_retry(t, flow, argv(n), duration)
            if data is NO_INSTANCE:
                t.ok(not target.exists(), "a runner killed before its instance existed created the target")
                continue
            if data is None:
                continue  # the failed retry is already a violation
            uri = f"faiss:{target}"
            answers_queries(uri, t)
            t.ok(store_rows(uri) == flow["rows"], "the target does not hold exactly the bundle's records")
            repo = open_repository(uri, create=False)
            try:
                arts = {a.path: a.sha256 for a in repo.artifacts.list()}
            finally:
                repo.close()
            t.ok(arts == flow["artifacts"], "the target does not hold exactly the bundle's artifacts")
    assert_no_violations(chaos, op)
