"""Drift detection finds exactly the changed ids, emits vector_drift_detected (events.jsonl and the
webhook), and refuses a tampered baseline. Real FAISS and PostgreSQL stores, real bundles."""

from __future__ import annotations

import dataclasses
import http.server
import json
import threading
import uuid
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from reference import with_options

from engine import api, events
from engine.cli import cli
from engine.errors import BundleInvalid
from engine.records import EmbeddingRecord
from engine.repository import open_repository
from engine.synthetic import record_id

COUNT, DIM = 300, 16
PERTURBED = [record_id(i) for i in (3, 150, 299)]
DELETED = [record_id(i) for i in (10, 200)]
ADDED = ["rec-0000150a"]  # sorts between existing ids


def pg_uri(pg_server) -> str:
    table = f"t_{uuid.uuid4().hex[:12]}"
    if pg_server.datadir is None:
        return with_options(pg_server.dsn, table=table)
    return f"postgresql+embedded:{pg_server.datadir}?table={table}"


@pytest.fixture(params=["faiss", "pgvector"])
def baseline(request, tmp_path) -> dict:
    """A seeded store of either backend and a bundle exported from it (the drift baseline)."""
    if request.param == "faiss":
        uri = f"faiss:{tmp_path / 'store'}?index=flat"
    else:
        uri = pg_uri(request.getfixturevalue("pg_server"))
    api.seed_store(uri, COUNT, DIM, seed=0, artifacts=False)
    bundle = api.export_snapshot(uri, tmp_path / "snapshots")["path"]
    return {"uri": uri, "bundle": bundle}


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "procos-home"
    monkeypatch.setenv("PROCOS_HOME", str(folder))
    monkeypatch.delenv("PROCOS_WEBHOOK_URL", raising=False)
    return folder


def tamper_store(uri: str) -> None:
    """Perturb 3 vectors (same version, same metadata), delete 2 records, add 1."""
    repo = open_repository(uri)
    try:
        changed = [dataclasses.replace(r, vector=r.vector * np.float32(1.5)) for r in repo.fetch(PERTURBED)]
        repo.upsert(changed)
        assert repo.delete(DELETED) == 2
        repo.upsert([EmbeddingRecord(id=ADDED[0], vector=np.ones(DIM, np.float32))])
    finally:
        repo.close()


def read_events(home: Path) -> list[dict]:
    path = home / "events.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


# --- the library ---------------------------------------------------------------------------------

def test_drift_check_finds_exactly_the_modified_ids(baseline, home):
    clean = api.drift_check(baseline["uri"], baseline["bundle"])
    assert clean["drift"] is False and clean["checked"] == COUNT and clean["event"] is None
    assert (clean["drifted"], clean["missing"], clean["unexpected"]) == ([], [], [])
    assert read_events(home) == []

    tamper_store(baseline["uri"])
    result = api.drift_check(baseline["uri"], baseline["bundle"])
    assert result["drift"] is True and result["mode"] == "all" and result["unexpected_checked"] is True
    assert result["drifted"] == PERTURBED
    assert result["missing"] == DELETED
    assert result["unexpected"] == ADDED
    assert result["checked"] == COUNT and result["counts"] == {"drifted": 3, "missing": 2, "unexpected": 1}
    assert result["event"] == "vector_drift_detected" and result["event_problems"] == []

    [event] = read_events(home)
    assert event["event"] == "vector_drift_detected" and event["instance_id"] is None
    assert event["time"].endswith("Z") and event["snapshot_id"] == result["snapshot_id"]
    assert event["drifted"] == PERTURBED and event["missing"] == DELETED and event["unexpected"] == ADDED


def test_sample_mode_checks_n_bundle_records_and_cannot_see_unexpected_ones(baseline, home):
    tamper_store(baseline["uri"])
    everything = api.drift_check(baseline["uri"], baseline["bundle"], sample=COUNT, emit=False)
    assert everything["mode"] == "sample" and everything["unexpected_checked"] is False
    assert everything["checked"] == COUNT
    assert everything["drifted"] == PERTURBED and everything["missing"] == DELETED
    assert everything["unexpected"] == []
    assert read_events(home) == []  # emit=False: the caller (a BPMN script) emits through its context

    some = api.drift_check(baseline["uri"], baseline["bundle"], sample=40, seed=7, emit=False)
    again = api.drift_check(baseline["uri"], baseline["bundle"], sample=40, seed=7, emit=False)
    assert some["checked"] == 40 and some["seed"] == 7
    assert set(some["drifted"]) <= set(PERTURBED) and set(some["missing"]) <= set(DELETED)
    assert (some["drifted"], some["missing"]) == (again["drifted"], again["missing"])


def test_a_tampered_bundle_is_not_a_baseline(tmp_path, home):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 50, DIM, artifacts=False)
    bundle = Path(api.export_snapshot(uri, tmp_path / "snapshots")["path"])
    manifest = json.loads((bundle / "manifest.json").read_text())
    manifest["record_count"] = 49
    (bundle / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleInvalid, match="not a trustworthy drift baseline"):
        api.drift_check(uri, str(bundle))
    assert read_events(home) == []


def test_an_archived_bundle_works_as_the_baseline(tmp_path, home):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 60, DIM, artifacts=False)
    bundle = api.export_snapshot(uri, tmp_path / "snapshots")["path"]
    archive = api.pack_snapshot(bundle)["archive"]
    repo = open_repository(uri)
    repo.delete([record_id(5)])
    repo.close()
    result = api.drift_check(uri, archive)
    assert result["missing"] == [record_id(5)] and result["drifted"] == [] and result["unexpected"] == []


# --- the webhook ----------------------------------------------------------------------------------

class Hook:
    def __init__(self) -> None:
        self.bodies: list[dict] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                hook.bodies.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/events"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def test_drift_is_posted_to_the_webhook(tmp_path, home, monkeypatch):
    hook = Hook()
    try:
        monkeypatch.setenv("PROCOS_WEBHOOK_URL", hook.url)
        uri = f"faiss:{tmp_path / 'store'}?index=flat"
        api.seed_store(uri, 40, DIM, artifacts=False)
        bundle = api.export_snapshot(uri, tmp_path / "snapshots")["path"]
        repo = open_repository(uri)
        [record] = repo.fetch([record_id(7)])
        repo.upsert([dataclasses.replace(record, vector=-record.vector)])
        repo.close()
        result = api.drift_check(uri, bundle, instance_id="inst-1")
    finally:
        hook.stop()
    assert result["event_problems"] == []
    [body] = hook.bodies
    assert body["event"] == "vector_drift_detected" and body["instance_id"] == "inst-1"
    assert body["drifted"] == [record_id(7)] and body == read_events(home)[0]


def test_a_dead_webhook_does_not_fail_the_check(tmp_path, home, monkeypatch):
    monkeypatch.setenv("PROCOS_WEBHOOK_URL", "http://user:secret@127.0.0.1:9/hook")
    monkeypatch.setattr(events, "BACKOFF", (0.01,))
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 30, DIM, artifacts=False)
    bundle = api.export_snapshot(uri, tmp_path / "snapshots")["path"]
    repo = open_repository(uri)
    repo.delete([record_id(0)])
    repo.close()
    result = api.drift_check(uri, bundle)
    assert result["missing"] == [record_id(0)]
    [problem] = result["event_problems"]
    assert "did not accept" in problem and "secret" not in problem
    assert [e["event"] for e in read_events(home)] == ["vector_drift_detected"]


# --- the CLI --------------------------------------------------------------------------------------

def invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


def test_cli_exit_codes_and_json(tmp_path, home):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 80, DIM, artifacts=False)
    bundle = api.export_snapshot(uri, tmp_path / "snapshots")["path"]

    clean = invoke("drift", "check", uri, "--snapshot", bundle, "--json")
    assert clean.exit_code == 0, clean.output
    body = json.loads(clean.stdout)
    assert {"drifted", "missing", "unexpected", "checked"} <= set(body) and body["checked"] == 80

    repo = open_repository(uri)
    repo.delete([record_id(1)])
    repo.close()
    drifted = invoke("drift", "check", uri, "--snapshot", bundle, "--all", "--json")
    assert drifted.exit_code == 4
    assert json.loads(drifted.stdout)["missing"] == [record_id(1)]

    sampled = invoke("drift", "check", uri, "--snapshot", bundle, "--sample", "80", "--seed", "3", "--json")
    assert sampled.exit_code == 4
    body = json.loads(sampled.stdout)
    assert body["mode"] == "sample" and body["unexpected"] == [] and body["unexpected_checked"] is False

    text = invoke("drift", "check", uri, "--snapshot", bundle)
    assert text.exit_code == 4 and text.stdout.startswith("DRIFT:") and record_id(1) in text.stdout
    assert invoke("drift", "check", uri, "--snapshot", bundle, "--all", "--sample", "3").exit_code == 2
    assert len(read_events(home)) == 3

    help_text = invoke("drift", "check", "--help")
    assert help_text.exit_code == 0 and "4 drift found" in help_text.stdout


def test_cli_reports_an_unusable_bundle_with_exit_code_3(tmp_path, home):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 20, DIM, artifacts=False)
    bundle = Path(api.export_snapshot(uri, tmp_path / "snapshots")["path"])
    (bundle / "embeddings/part-00000.parquet").write_bytes(b"not parquet")
    result = invoke("drift", "check", uri, "--snapshot", str(bundle), "--json")
    assert result.exit_code == 3  # bundle verification failed
    assert "Error:" in result.stderr and "trustworthy" in result.stderr
