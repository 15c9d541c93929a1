"""Shared helpers for the workflow tests: a temporary PROCOS_HOME, fixture processes, a tiny HTTP server."""

from __future__ import annotations

import http.server
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
# The users every workflow test starts with (the login name running the tests is an Admin and Owner).
USERS = {"alice": ["Owner", "Approver"], "bob": ["Approver"], "carol": ["Owner"]}


@dataclass
class WfEnv:
    home: Path
    counter: Path
    processes: Path
    monkeypatch: object = None
    tokens: dict = field(default_factory=dict)

    def service(self):
        from engine.workflow import WorkflowService

        return WorkflowService()

    def prod(self) -> None:
        """Make the deployment prod for the rest of the test (exports and imports need an approver)."""
        self.monkeypatch.setenv("PROCOS_ENV", "prod")

    def counts(self) -> list[str]:
        return self.counter.read_text().split() if self.counter.exists() else []


def seed_users(users: dict[str, list[str]] | None = None, home: Path | None = None) -> dict[str, str]:
    """Create the login user (Admin, Owner) and ``users`` in PROCOS_HOME (or ``home``); return their tokens."""
    from engine.workflow import WorkflowService
    from engine.workflow.identity import login_name
    from engine.workflow.settings import load_settings

    svc = WorkflowService(load_settings({"PROCOS_HOME": str(home)}) if home else None)
    try:
        me = login_name()
        tokens = {me: svc.directory.add(svc.directory.identity(me), me, ["Admin", "Owner"])["token"]}
        admin = svc.directory.identity(me)
        for name, roles in (USERS if users is None else users).items():
            tokens[name] = svc.directory.add(admin, name, roles)["token"]
        return tokens
    finally:
        svc.close()


def make_env(tmp_path: Path, monkeypatch, processes: Path | None = None, users: bool = True) -> WfEnv:
    home = tmp_path / "home"
    home.mkdir()
    processes = processes or FIXTURES / "processes"
    monkeypatch.setenv("PROCOS_HOME", str(home))
    monkeypatch.setenv("PROCOS_PROCESSES", str(processes))
    monkeypatch.delenv("PROCOS_STATE_DSN", raising=False)
    monkeypatch.delenv("PROCOS_WEBHOOK_URL", raising=False)
    monkeypatch.delenv("PROCOS_TOKEN", raising=False)
    env = WfEnv(home=home, counter=tmp_path / "counter.txt", processes=processes, monkeypatch=monkeypatch)
    if users:
        env.tokens = seed_users()
    return env


def copy_project(tmp_path: Path, names: list[str]) -> Path:
    """A private project folder (processes/ + scripts/test/) that a test may edit."""
    project = tmp_path / "project"
    (project / "processes").mkdir(parents=True)
    shutil.copytree(FIXTURES / "scripts", project / "scripts")
    for name in names:
        shutil.copy(FIXTURES / "processes" / f"{name}.bpmn", project / "processes")
    return project / "processes"


@dataclass
class Server:
    url: str
    requests: list = field(default_factory=list)
    bodies: list = field(default_factory=list)
    statuses: list = field(default_factory=list)  # statuses to answer POSTs with, in order (then 200)
    httpd: object = None
    stopped: bool = False

    def stop(self) -> None:
        if not self.stopped:
            self.stopped = True
            self.httpd.shutdown()
            self.httpd.server_close()


def serve(directory: Path) -> Server:
    """Serve ``directory`` on 127.0.0.1 (GET) and record POSTed bodies, in a thread."""
    server = Server(url="")

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(directory), **kwargs)

        def do_GET(self):  # noqa: N802
            server.requests.append(self.path)
            super().do_GET()

        def do_POST(self):  # noqa: N802
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            server.bodies.append(body)
            status = server.statuses.pop(0) if server.statuses else 200
            self.send_response(status)
            self.end_headers()

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.httpd = httpd
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    return server
