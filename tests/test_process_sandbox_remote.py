"""Remote scripts in hostile process files: https only (http for loopback), no redirects, a size cap, pins.

A loopback HTTP server stands in for the remote host; each refusal is checked to have fetched nothing
more than it had to, cached nothing and run nothing (the script would write the counter file).
"""

from __future__ import annotations

import http.server
import re
import threading

import pytest
from workflow_support import FIXTURES, copy_project, make_env

from engine.errors import ScriptRefused
from engine.workflow.scripts import MAX_SCRIPT_BYTES, check_url, sha256_hex

REMOTE = (FIXTURES / "scripts" / "test" / "remote.py").read_bytes()


class Remote:
    """GET /remote.py (the pinned script), /redirect.py (302 to it), /endless.py (bytes until hung up)."""

    def __init__(self) -> None:
        self.requests: list[str] = []
        self.endless_sent = 0
        remote = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                remote.requests.append(self.path)
                if self.path == "/redirect.py":
                    self.send_response(302)
                    self.send_header("Location", "/remote.py")
                    self.end_headers()
                elif self.path == "/endless.py":
                    self.send_response(200)
                    self.end_headers()
                    chunk = b"#" * 65536
                    try:
                        while remote.endless_sent < 256 * MAX_SCRIPT_BYTES:  # bounded, should the client not stop
                            self.wfile.write(chunk)
                            remote.endless_sent += len(chunk)
                    except OSError:
                        pass  # the client hung up: what the size cap is for
                else:
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(REMOTE)))
                    self.end_headers()
                    self.wfile.write(REMOTE)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def remote():
    server = Remote()
    yield server
    server.stop()


def project(tmp_path, monkeypatch, url: str, pin: str | None = None):
    processes = copy_project(tmp_path, ["fx_remote"])
    bpmn = processes / "fx_remote.bpmn"
    text = bpmn.read_text().replace("http://127.0.0.1:9/remote.py", url)
    if pin is not None:
        text = re.sub(r'procos:sha256="[0-9a-f]+"', f'procos:sha256="{pin}"', text)
    bpmn.write_text(text)
    return make_env(tmp_path, monkeypatch, processes)


def assert_nothing_ran(env) -> None:
    svc = env.service()
    assert not env.counter.exists() and svc.list_instances() == []
    assert not (env.home / "scripts-cache").exists() or not any((env.home / "scripts-cache").iterdir())


def test_the_pinned_loopback_script_runs(tmp_path, monkeypatch, remote):
    env = project(tmp_path, monkeypatch, f"{remote.url}/remote.py")
    assert env.service().start_process("fx_remote", {"counter": str(env.counter)})["state"] == "completed"
    assert env.counts() == ["remote:Step"]


def test_an_unpinned_remote_script_is_refused_and_never_fetched(tmp_path, monkeypatch, remote):
    env = project(tmp_path, monkeypatch, f"{remote.url}/remote.py")
    bpmn = env.processes / "fx_remote.bpmn"
    bpmn.write_text(re.sub(r' procos:sha256="[0-9a-f]+"', "", bpmn.read_text()))
    with pytest.raises(ScriptRefused, match="no procos:sha256 pin"):
        env.service().start_process("fx_remote", {"counter": str(env.counter)})
    assert remote.requests == []
    assert_nothing_ran(env)


def test_a_wrong_pin_is_checked_before_a_byte_runs(tmp_path, monkeypatch, remote):
    env = project(tmp_path, monkeypatch, f"{remote.url}/remote.py", pin="ab" * 32)
    with pytest.raises(ScriptRefused, match="pinned to abab"):
        env.service().start_process("fx_remote", {"counter": str(env.counter)})
    assert remote.requests == ["/remote.py"]
    assert_nothing_ran(env)


def test_a_pin_that_is_not_a_sha256_is_refused(tmp_path, monkeypatch, remote):
    env = project(tmp_path, monkeypatch, f"{remote.url}/remote.py", pin="../../../etc/passwd")
    with pytest.raises(ScriptRefused, match="not a sha256"):
        env.service().start_process("fx_remote", {"counter": str(env.counter)})
    assert remote.requests == []
    assert_nothing_ran(env)


def test_plain_http_to_a_non_loopback_host_is_refused_even_when_the_pin_is_cached(tmp_path, monkeypatch):
    env = project(tmp_path, monkeypatch, "http://192.0.2.10/remote.py")  # TEST-NET-1: never reachable
    cache = env.home / "scripts-cache"
    cache.mkdir()
    (cache / f"{sha256_hex(REMOTE)}.py").write_bytes(REMOTE)  # the pinned bytes are even at hand
    with pytest.raises(ScriptRefused, match=r"https:// only"):
        env.service().start_process("fx_remote", {"counter": str(env.counter)})
    assert not env.counter.exists() and env.service().list_instances() == []


def test_a_redirect_is_refused_and_its_target_never_fetched(tmp_path, monkeypatch, remote):
    env = project(tmp_path, monkeypatch, f"{remote.url}/redirect.py")
    with pytest.raises(ScriptRefused, match="redirects to /remote.py; redirects are refused"):
        env.service().start_process("fx_remote", {"counter": str(env.counter)})
    assert remote.requests == ["/redirect.py"]
    assert_nothing_ran(env)


def test_an_oversized_remote_script_is_refused_while_streaming(tmp_path, monkeypatch, remote):
    env = project(tmp_path, monkeypatch, f"{remote.url}/endless.py")
    with pytest.raises(ScriptRefused, match=f"more than {MAX_SCRIPT_BYTES} bytes"):
        env.service().start_process("fx_remote", {"counter": str(env.counter)})
    assert remote.requests == ["/endless.py"]
    assert remote.endless_sent < 64 * MAX_SCRIPT_BYTES  # stopped reading early, not after the whole body
    assert_nothing_ran(env)


@pytest.mark.parametrize("url", [
    "https://scripts.example.org/v1/x.py", "HTTPS://Scripts.Example.org/x.py", "http://127.0.0.1:8000/x.py",
    "http://127.8.9.10/x.py", "http://[::1]:8080/x.py", "http://localhost/x.py", "http://LOCALHOST:1/x.py",
])
def test_allowed_script_urls(url):
    check_url(url, "test")


@pytest.mark.parametrize("url", [
    "http://example.org/x.py", "http://10.0.0.1/x.py", "http://127.0.0.1.nip.io/x.py",
    "http://localhost.example.org/x.py", "http://127.0.0.1@example.org/x.py", "http://0x7f000001/x.py",
    "ftp://127.0.0.1/x.py", "file:///etc/passwd", "https:///x.py", "gopher://localhost/x",
])
def test_refused_script_urls(url):
    with pytest.raises(ScriptRefused, match="refused"):
        check_url(url, "test")
