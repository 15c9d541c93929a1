"""Remote scripts: fetched over HTTP only when pinned, cached by hash, refused on mismatch."""

from __future__ import annotations

import re

import pytest
from workflow_support import FIXTURES, copy_project, make_env, serve

from engine.errors import ScriptRefused


@pytest.fixture
def server():
    s = serve(FIXTURES / "scripts" / "test")
    yield s
    s.stop()


def remote_project(tmp_path, monkeypatch, server, edit=lambda text: text):
    processes = copy_project(tmp_path, ["fx_remote"])
    bpmn = processes / "fx_remote.bpmn"
    bpmn.write_text(edit(bpmn.read_text().replace("http://127.0.0.1:9", server.url)))
    return make_env(tmp_path, monkeypatch, processes)


def test_pinned_remote_script_is_fetched_cached_and_run(tmp_path, monkeypatch, server):
    env = remote_project(tmp_path, monkeypatch, server)
    svc = env.service()
    result = svc.start_process("fx_remote", {"counter": str(env.counter)})
    assert result["state"] == "completed" and env.counts() == ["remote:Step"]
    assert server.requests == ["/remote.py"]
    [cached] = (env.home / "scripts-cache").iterdir()
    script = [h for h in svc.show_instance(result["instance_id"])["history"] if h["kind"] == "script"][0]
    assert script["script"] == f"{server.url}/remote.py" and cached.name == f"{script['sha256']}.py"
    server.stop()  # the cache serves the pinned bytes from now on
    assert svc.start_process("fx_remote", {"counter": str(env.counter)})["state"] == "completed"


def test_unpinned_url_is_refused_and_never_fetched(tmp_path, monkeypatch, server):
    env = remote_project(tmp_path, monkeypatch, server, lambda t: re.sub(r' procos:sha256="[0-9a-f]+"', "", t))
    with pytest.raises(ScriptRefused, match="no procos:sha256 pin"):
        env.service().start_process("fx_remote", {"counter": str(env.counter)})
    assert server.requests == [] and not env.counter.exists()


def test_remote_script_with_wrong_pin_is_refused_and_never_runs(tmp_path, monkeypatch, server):
    env = remote_project(tmp_path, monkeypatch, server,
                         lambda t: re.sub(r'procos:sha256="[0-9a-f]+"', 'procos:sha256="' + "0" * 64 + '"', t))
    with pytest.raises(ScriptRefused, match="pinned to 0000"):
        env.service().start_process("fx_remote", {"counter": str(env.counter)})
    assert not env.counter.exists() and not (env.home / "scripts-cache").exists()
