"""Each panel page's logic, run by Streamlit's AppTest (no browser) against a real PROCOS_HOME.

The pages act through engine.api as the Identity in the session, exactly like the CLI user; long
operations run in background runners, so a test runs the page again until the instance is done.
"""

from __future__ import annotations

import getpass
import hashlib
import json
import re
import time
from pathlib import Path

import pytest
from workflow_support import make_env

pytest.importorskip("streamlit")
from streamlit.testing.v1 import AppTest  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "engine" / "ui" / "app.py"
PAGE = """
import streamlit as st
from engine.ui.screens import {module}
{module}.render(st.session_state["procos_identity"])
"""


@pytest.fixture
def panel(tmp_path, monkeypatch):
    """A PROCOS_HOME with users (alice Owner+Approver, bob Approver, carol Owner), one FAISS store
    (200 x 16) and one snapshots folder in panel.yaml."""
    from engine import api

    env = make_env(tmp_path, monkeypatch)
    store = f"faiss:{tmp_path / 'kb'}"
    api.seed_store(store, 200, 16)
    (tmp_path / "snaps").mkdir()
    (env.home / "panel.yaml").write_text(json.dumps({"stores": [{"name": "kb", "uri": store}],
                                                     "locations": [str(tmp_path / "snaps")], "upload_limit_mb": 1}))
    env.store, env.snaps = store, tmp_path / "snaps"
    return env


def identity(name: str):

    from engine.workflow import WorkflowService  # test set-up only: the identity a login would give

    svc = WorkflowService()
    try:
        return svc.directory.identity(name, via="password")
    finally:
        svc.close()


def page(module: str, who: str, **query) -> AppTest:
    at = AppTest.from_string(PAGE.format(module=module), default_timeout=60)
    at.session_state["procos_identity"] = identity(who)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def texts(at: AppTest) -> str:
    parts = [e.value for kind in ("markdown", "caption", "info", "success", "warning", "error", "title", "subheader")
             for e in getattr(at, kind)]
    return "\n".join(str(p) for p in parts)


def until(at: AppTest, predicate, timeout: float = 60.0) -> AppTest:
    deadline = time.monotonic() + timeout
    while not predicate(at):
        assert time.monotonic() < deadline, texts(at)
        time.sleep(0.3)
        at.run()
    return at


def frame(at: AppTest, i: int = 0):
    """The i-th dataframe's values (a styled table gives its data)."""
    value = at.dataframe[i].value
    return getattr(value, "data", value)


def button(at: AppTest, label: str):
    return next(b for b in at.button if b.label == label)


def test_login_form_logs_in_refuses_a_wrong_password_and_never_keeps_it(panel):
    from engine.api import processes

    processes.set_password("alice", "alice-password", actor=identity(getpass.getuser()))
    at = AppTest.from_file(str(APP), default_timeout=60).run()
    assert [t.label for t in at.text_input] == ["User", "Password"]
    at.text_input(key="login_user").input("alice")
    at.text_input(key="login_password").input("not-her-password")
    at = at.button[0].click().run()
    assert "Login failed: wrong user name or password." in texts(at)
    assert "procos_identity" not in at.session_state
    at.text_input(key="login_user").input("alice")
    at.text_input(key="login_password").input("alice-password")
    at = at.button[0].click().run()
    assert at.session_state["procos_identity"].name == "alice"
    assert any(b.label == "Log out" for b in at.button)
    assert "alice-password" not in str([w.value for w in at.text_input]) and "alice-password" not in texts(at)
    at = button(at, "Log out").click().run()
    assert "procos_identity" not in at.session_state and [t.label for t in at.text_input] == ["User", "Password"]


def test_overview_shows_each_store_with_its_figures_and_checks(panel):
    at = page("overview", "carol")
    row = frame(at).iloc[0].to_dict()
    assert (row["Store"], row["Backend"], row["Records"], row["Dimensions"], row["Paused"]) == ("kb", "faiss", 200, 16, "no")
    assert row["Last snapshot"].startswith("▲") and row["Drift check"] == "▲ never run" and row["DR drill"] == "▲ never run"


def test_export_starts_the_process_as_the_user_and_follows_it_to_the_end(panel):
    at = page("export", "carol")
    at = button(at, "Export snapshot").click().run()
    iid = at.query_params["instance"][0] if isinstance(at.query_params["instance"], list) else at.query_params["instance"]
    at = until(at, lambda a: "export_snapshot completed." in texts(a))
    from engine.api import processes

    shown = processes.show_instance(iid)
    assert shown["started_by"] == "carol" and shown["outcome"] == "succeeded"
    assert Path(shown["data"]["bundle"]).parent == panel.snaps


def test_export_in_prod_stops_following_when_it_waits_for_approval(panel):
    panel.prod()
    at = page("export", "carol")
    at = button(at, "Export snapshot").click().run()
    until(at, lambda a: "Waiting for approval" in texts(a))


def test_approvals_offers_only_tasks_the_user_may_complete_and_records_the_decision(panel):
    from engine.api import processes

    panel.prod()
    started = processes.start_process("export_snapshot", {"source": panel.store, "out_dir": str(panel.snaps)},
                                      actor=identity("alice"))
    assert started["state"] == "waiting"
    assert "No task is waiting for you." in texts(page("approvals", "carol"))  # Owner only
    assert "No task is waiting for you." in texts(page("approvals", "alice"))  # the starter, in prod
    at = page("approvals", "bob")
    table = at.table[0].value
    shown = dict(zip(table["Field"], table["Value"], strict=True))
    assert shown["Process"] == "export_snapshot" and shown["Started by"] == "alice" and shown["Records"] == "200"
    at.text_area[0].input("counts match the source")
    at = button(at, "Approve").click().run()
    assert re.search(r"Approved: instance \w+ runs on", texts(at))
    done = processes.show_instance(started["instance_id"])
    deadline = time.monotonic() + 60
    while done["state"] == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
        done = processes.show_instance(started["instance_id"])
    assert (done["state"], done["data"]["approver"], done["data"]["comment"]) == ("completed", "bob",
                                                                                  "counts match the source")


def test_instances_lists_every_instance_and_opens_one_with_diagram_history_and_retry(panel):
    from engine.api import processes

    flag = panel.home / "fail.flag"
    flag.write_text("fail")
    failed = processes.start_process("fx_failure", {"counter": str(panel.counter), "fail_flag": str(flag)},
                                     actor=identity("alice"))
    assert failed["state"] == "error"
    at = page("instances", "alice", instance=failed["instance_id"])
    assert frame(at)["Instance"].tolist() == [failed["instance_id"]]
    assert "History" in texts(at) and "Variables" in texts(at)
    assert any(b.label == "Retry" for b in at.button) and any(b.label == "Cancel" for b in at.button)
    carol_view = page("instances", "carol", instance=failed["instance_id"])
    flag.unlink()
    at = button(at, "Retry").click().run()
    until(at, lambda a: processes.show_instance(failed["instance_id"])["state"] == "completed")
    carol_view = button(carol_view, "Cancel").click().run()  # pressed on a stale view of the finished instance
    assert not {"Retry", "Cancel"} & {b.label for b in carol_view.button}  # nothing offered any more
    assert processes.show_instance(failed["instance_id"])["outcome"] == "succeeded"  # and nothing cancelled


def test_catalog_draws_the_lineage_and_shows_a_manifest(panel):
    from engine import api

    full = api.export_snapshot(panel.store, panel.snaps)
    api.seed_store(panel.store, 220, 16)
    delta = api.export_delta(panel.store, full["path"], panel.snaps)
    at = page("catalog", "carol")
    dot = at.get("graphviz_chart")[0].proto.spec
    assert f'"{full["snapshot_id"]}" -> "{delta["snapshot_id"]}"' in dot
    names = frame(at)["Bundle"].tolist()
    assert names == [Path(delta["path"]).name, Path(full["path"]).name]
    assert json.loads(at.json[0].value)["snapshot_id"] == delta["snapshot_id"]


def test_drills_table_charts_and_report(panel, tmp_path):
    from engine.api import processes

    drill = processes.start_process("simulate_restore", {"source": panel.store, "out_dir": str(tmp_path / "drill"),
                                                         "scratch": f"faiss:{tmp_path / 'scratch'}"},
                                    actor=identity("alice"))
    assert drill["state"] == "completed", drill
    at = page("drills", "carol")
    drills = frame(at)
    assert drills["Records"].tolist() == [200] and drills["Result"].tolist() == ["✔ passed"]
    assert len(at.get("vega_lite_chart")) == 3  # restore seconds, mean top-k overlap, records over time
    assert "# DR drill: PASS" in texts(at) or "DR drill: PASS" in texts(at)


def test_validation_renders_the_markdown_report(panel):
    from engine import api

    report = api.validation_report_path()
    api.validate(panel.store, panel.store, queries=5, report_path=report)
    at = page("validation", "carol")
    assert report.name in at.selectbox[0].value
    assert "PASS" in texts(at) and "|" in texts(at)  # the document itself, tables included


def test_import_refuses_a_damaged_upload_with_the_reason_and_removes_it(panel):
    from engine import api
    from engine.api import panel as panel_api

    exported = api.export_snapshot(panel.store, panel.snaps, pack=True)
    data = bytearray(Path(exported["path"] + ".tar.zst").read_bytes())
    data[len(data) // 2] ^= 0xFF
    at = page("importing", "carol")
    at.get("file_uploader")[0].set_value(("kb.tar.zst", bytes(data), "application/zstd"))
    at = at.run()
    assert "Uploaded kb.tar.zst" in texts(at)
    [upload] = [p for p in Path(panel_api.panel_config()["uploads"]).rglob("*.tar.zst")]
    at = button(at, "Check bundle").click().run()
    at = until(at, lambda a: "Refused:" in texts(a))
    assert "failed verification" in texts(at) and "The uploaded file was removed." in texts(at)
    assert not upload.exists()


def test_import_checks_a_listed_bundle_shows_the_plan_then_imports(panel, tmp_path):
    from engine import api
    from engine.api import processes

    api.export_snapshot(panel.store, panel.snaps)
    target = f"faiss:{tmp_path / 'target'}"
    cfg = json.loads((panel.home / "panel.yaml").read_text())
    cfg["stores"].append({"name": "target", "uri": target})
    (panel.home / "panel.yaml").write_text(json.dumps(cfg))
    at = page("importing", "carol")
    at.radio[0].set_value("Pick a listed bundle")
    at = at.run()
    target_box = next(s for s in at.selectbox if s.label == "Target store")
    target_box.set_value("target")
    at = button(at.run(), "Check bundle").click().run()
    at = until(at, lambda a: any(b.label == "Import" for b in a.button))
    plan = at.table[0].value
    assert plan["would insert"].tolist() == [200]
    at = button(at, "Import").click().run()
    until(at, lambda a: "import_snapshot completed." in texts(a))
    assert api.store_stats(target)["count"] == 200
    assert processes.list_instances()[-1]["started_by"] == "carol"


def test_vendored_bpmn_js_matches_its_documented_source():
    folder = ROOT / "engine" / "ui" / "static" / "bpmn-js"
    table = (folder / "SOURCE.md").read_text()
    for name in ("bpmn-navigated-viewer.production.min.js", "diagram-js.css", "bpmn-js.css", "LICENSE"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"`{name}`" in table and digest in table, name
