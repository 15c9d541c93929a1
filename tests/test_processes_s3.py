"""The processes move bundles through S3: export and the DR drill push to a ``destination``, and the
import process takes an ``s3://`` bundle (pulled once into PROCOS_HOME, removed when done), against a real
S3 API (moto's server on 127.0.0.1)."""

from __future__ import annotations

import os
from pathlib import Path

from engine import api
from tests.test_processes_e2e import Procos

COUNT, DIM = 120, 8


def test_export_pushes_import_pulls_and_the_drill_pushes(s3, tmp_path: Path):
    source = f"faiss:{tmp_path / 'source'}?index=flat"
    api.seed_store(source, COUNT, DIM)
    procos = Procos(tmp_path / "home")
    procos.env.update({k: v for k, v in os.environ.items() if k.startswith("AWS_")})
    exported = procos.start("export_snapshot", "alice", source=source, out_dir=tmp_path / "out",
                            destination=s3.url("prod"))
    name = Path(exported["data"]["bundle"]).name
    remote = exported["data"]["remote"]
    assert remote == s3.url(f"prod/{name}") and f"prod/{name}/manifest.json" in s3.keys("prod/")
    [event] = [e for e in procos.events() if e["event"] == "snapshot_exported"]
    assert event["remote"] == remote
    bad = procos.run("process", "start", "export_snapshot", "--as", "alice", "--var", f"source={source}",
                     "--var", f"out_dir={tmp_path / 'out'}", "--var", "destination=/not/s3", code=2)
    assert "expected an S3 location" in bad.stderr  # refused before an instance exists

    target = f"faiss:{tmp_path / 'target'}"
    imported = procos.start("import_snapshot", "alice", bundle=remote, target=target)
    assert imported["state"] == "completed" and imported["data"]["imported"] == COUNT
    assert imported["data"]["bundle_source"] == remote
    assert not Path(imported["data"]["fetched_folder"]).exists()  # the pulled copy is gone
    assert api.store_stats(target)["count"] == COUNT

    drill = procos.start("simulate_restore", "alice", source=source, out_dir=tmp_path / "drill",
                         destination=s3.url("drills"))
    assert drill["state"] == "completed" and drill["data"]["remote"].startswith(s3.url("drills/"))
