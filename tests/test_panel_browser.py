"""The panel in a real headless Chromium (Playwright), against ``procos ui`` started as a subprocess.

Flows: an owner exports in prod, logs out; an approver approves from Approvals and sees the instance
complete with every activity of its diagram marked completed; a rejected login; an approver without
the role sees no task; a damaged upload is refused with the reason shown. Every page is saved as a
screenshot under ``docs/panel/`` when ``PROCOS_PANEL_SCREENSHOTS=1`` (for docs/panel.md), else under
pytest's temporary folder. Skipped, with the reason, when Chromium or Playwright is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")
if not Path(CHROMIUM).exists():
    pytest.skip("no system Chromium (apt-get install chromium; make install does it)", allow_module_level=True)

USERS = {"olive": ["Owner"], "adam": ["Approver"], "nora": ["Owner"]}
PAGES = ("Overview", "Export", "Import", "Approvals", "Instances", "Catalog", "Drills", "Validation")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def deployment(tmp_path_factory):
    """A prod PROCOS_HOME with users and passwords, a FAISS store, a snapshots folder, and ``procos ui``."""
    base = tmp_path_factory.mktemp("panel")
    home = base / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROCOS_") and k != "VECTOR_ENDPOINT"}
    env.update(PROCOS_HOME=str(home), PROCOS_ENV="prod", XDG_DATA_HOME=os.environ["XDG_DATA_HOME"])
    setup = f"""
import getpass, json
from engine.api import processes, seed_store, validate, validation_report_path
me = getpass.getuser()
admin = processes.add_user(me, ["Admin"])
who = processes.authenticate()
for name, roles in {json.dumps(USERS)}.items():
    processes.add_user(name, roles, actor=who)
    processes.set_password(name, name + "-password-1", actor=who)
seed_store("faiss:{base}/kb", 1000, 16)
validate("faiss:{base}/kb", "faiss:{base}/kb", queries=5, report_path=validation_report_path())
"""
    subprocess.run([sys.executable, "-c", setup], env=env, check=True, cwd=ROOT, timeout=120)
    (base / "snaps").mkdir()
    (home / "panel.yaml").write_text(json.dumps({"stores": [{"name": "kb", "uri": f"faiss:{base}/kb"}],
                                                "locations": [str(base / "snaps")], "upload_limit_mb": 8}))
    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "engine.cli", "ui", "--port", str(port)], env=env, cwd=ROOT,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    import urllib.request

    while True:
        try:
            urllib.request.urlopen(url + "/_stcore/health", timeout=2)
            break
        except OSError:
            assert server.poll() is None, server.stdout.read().decode()
            assert time.monotonic() < deadline, "procos ui did not start"
            time.sleep(0.3)
    yield {"url": url, "home": home, "base": base, "env": env}
    os.killpg(server.pid, 15)
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory) -> Path:
    folder = ROOT / "docs" / "panel" if os.environ.get("PROCOS_PANEL_SCREENSHOTS") else tmp_path_factory.mktemp("shots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def idle(page) -> None:
    """Wait until Streamlit has finished running the script (no 'running' indicator)."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def login(page, url: str, name: str, password: str | None = None) -> None:
    page.goto(url)
    page.get_by_label("User").fill(name)
    page.get_by_role("textbox", name="Password").fill(password or f"{name}-password-1")
    page.get_by_role("button", name="Log in").click()


def goto(page, name: str) -> None:
    page.get_by_role("link", name=name, exact=True).click()
    page.get_by_role("heading", name=name, exact=True).wait_for(timeout=30_000)
    idle(page)


def test_owner_exports_in_prod_approver_approves_and_sees_the_completed_diagram(deployment, browser, shots):
    page = browser.new_page(viewport={"width": 1400, "height": 1500})
    login(page, deployment["url"], "olive")
    page.get_by_role("button", name="Log out").wait_for(timeout=30_000)
    idle(page)
    page.screenshot(path=str(shots / "overview.png"))
    goto(page, "Export")
    page.get_by_role("button", name="Export snapshot").click()
    page.get_by_text("Waiting for approval").wait_for(timeout=60_000)
    idle(page)
    page.screenshot(path=str(shots / "export.png"))
    instance = page.url.split("instance=")[1].split("&")[0]
    page.get_by_role("button", name="Log out").click()
    page.get_by_role("button", name="Log in").wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "login.png"))

    login(page, deployment["url"], "adam")
    goto(page, "Approvals")
    page.get_by_text("olive").first.wait_for()
    page.screenshot(path=str(shots / "approvals.png"))
    page.get_by_label("Comment").first.fill("counts match the source")
    page.get_by_role("button", name="Approve").first.click()
    page.get_by_text(f"Approved: instance {instance} runs on").wait_for(timeout=30_000)

    goto(page, "Instances")
    page.get_by_text("export_snapshot completed.").wait_for(timeout=120_000)
    frame = page.frame_locator(f'iframe[title="BPMN diagram of instance {instance}"]')
    frame.locator("body[data-rendered=true]").wait_for(timeout=30_000)
    from engine.api import processes  # what the diagram must show, read with the same PROCOS_HOME

    os.environ["PROCOS_HOME"] = str(deployment["home"])
    try:
        drawn = processes.instance_diagram(instance)
    finally:
        os.environ.pop("PROCOS_HOME")
    assert drawn["active"] == [] and drawn["failed"] == []
    assert {"Task_approve", "Task_freeze", "Task_dump", "Task_checksums", "Task_announce"} <= set(drawn["completed"])
    marked = frame.locator(".procos-completed").evaluate_all("els => els.map(e => e.dataset.elementId)")
    assert set(marked) == set(drawn["completed"])
    assert frame.locator(".procos-active, .procos-failed").count() == 0
    page.screenshot(path=str(shots / "instances.png"))
    for name in ("Catalog", "Drills", "Validation"):
        goto(page, name)
        page.screenshot(path=str(shots / f"{name.lower()}.png"))
    page.close()


def test_a_wrong_password_is_refused(deployment, browser):
    page = browser.new_page()
    login(page, deployment["url"], "olive", "not-the-password")
    page.get_by_text("Login failed: wrong user name or password.").wait_for(timeout=30_000)
    assert page.get_by_role("button", name="Log out").count() == 0
    assert "not-the-password" not in page.content()
    page.close()


def test_a_user_without_the_approver_role_sees_no_task(deployment, browser):
    from engine.api import processes

    os.environ["PROCOS_HOME"] = str(deployment["home"])
    os.environ["PROCOS_ENV"] = "prod"
    try:
        me = processes.authenticate()
        waiting = processes.start_process("export_snapshot", {"source": f"faiss:{deployment['base']}/kb",
                                                              "out_dir": str(deployment["base"] / "snaps")},
                                          actor=processes.refresh_identity(me.__class__(
                                              name="olive", roles=frozenset(), via="password", known=True)))
    finally:
        os.environ.pop("PROCOS_HOME")
        os.environ["PROCOS_ENV"] = "dev"
    assert waiting["state"] == "waiting"
    page = browser.new_page()
    login(page, deployment["url"], "nora")
    goto(page, "Approvals")
    page.get_by_text("No task is waiting for you.").wait_for(timeout=30_000)
    assert page.get_by_role("button", name="Approve").count() == 0
    page.close()


def test_a_damaged_upload_is_refused_with_the_reason(deployment, browser, shots, tmp_path):
    damaged = tmp_path / "damaged.tar.zst"
    damaged.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(4096))  # a zstd magic number, then noise
    page = browser.new_page(viewport={"width": 1400, "height": 1300})
    login(page, deployment["url"], "olive")
    page.get_by_role("button", name="Log out").wait_for(timeout=30_000)
    goto(page, "Import")
    page.locator('input[type="file"]').first.set_input_files(str(damaged))
    page.get_by_text("Uploaded damaged.tar.zst").wait_for(timeout=30_000)
    page.screenshot(path=str(shots / "import.png"))
    page.get_by_role("button", name="Check bundle").click()
    page.get_by_text("Refused:").wait_for(timeout=60_000)
    page.get_by_text("The uploaded file was removed.").wait_for(timeout=30_000)
    idle(page)
    page.screenshot(path=str(shots / "import-refused.png"))
    uploads = deployment["home"] / "uploads"
    assert not [p for p in uploads.rglob("*") if p.is_file()]
    page.close()
