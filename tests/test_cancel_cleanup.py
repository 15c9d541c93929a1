"""Cancelling an export whose runner died after the freeze clears the flag and removes the staging folder."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

from engine import api
from tests.test_processes_e2e import Procos

CRASHING_RUNNER = textwrap.dedent("""
    import os, sys
    import engine.api as api
    api.export_embeddings = lambda *args, **kwargs: os._exit(9)  # the runner dies mid-export
    from engine.workflow import WorkflowService
    WorkflowService().start_process("export_snapshot", {"source": sys.argv[1], "out_dir": sys.argv[2],
                                                        "environment": "dev"}, "alice")
""")


def test_cancel_of_an_interrupted_export_runs_its_registered_clean_up(tmp_path: Path):
    source = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(source, 60, 8)
    out = tmp_path / "snaps"
    procos = Procos(tmp_path / "home")
    died = subprocess.run([sys.executable, "-c", CRASHING_RUNNER, source, str(out)], env=procos.env,
                          capture_output=True, text=True, timeout=120)
    assert died.returncode == 9, died.stderr
    [instance] = procos.json("instance", "list")
    assert instance["state"] == "interrupted"
    assert api.is_paused(source)  # frozen by the dead runner
    assert [p.name for p in out.iterdir() if p.name.startswith(".knowledge_snapshot_")]  # staging left behind
    shown = procos.show(instance["instance_id"])
    assert set(shown["data"]["on_cancel"]) == {"resume_ingestion", "abort_export"}

    procos.run("instance", "cancel", instance["instance_id"])
    assert not api.is_paused(source)
    assert [p for p in out.iterdir() if p.name.startswith(".knowledge_snapshot_")] == []
    history = procos.show(instance["instance_id"])["history"]
    assert [h["op"] for h in history if h["kind"] == "cleanup"] == ["abort_export", "resume_ingestion"]
    assert procos.json("instance", "list")[0]["state"] == "cancelled"


def test_a_completed_export_leaves_no_clean_up_behind(tmp_path: Path):
    source = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(source, 20, 8)
    procos = Procos(tmp_path / "home")
    done = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "snaps", environment="dev")
    assert done["state"] == "completed" and "on_cancel" not in done["data"]
