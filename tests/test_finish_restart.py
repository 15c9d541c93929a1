"""The last export step runs again after it was killed (the export process retries it): found by the chaos campaign.

A runner killed while ``finish_export`` wrote checksums.sha256 and manifest.json left files that made
the retried step fail ("holds unexpected files"), so ``instance retry`` ended in error. Now a retried
finish writes them again, and a staging folder whose finish was killed just before its rename (the
step state already removed) is verified and published.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from engine import api
from engine.snapshot import layout, verify_bundle

KILLERS = {
    # killed after writing the manifest, before removing the step state
    "after the manifest": ("import os; from pathlib import Path; from engine.snapshot import finish\n"
                           "real = finish.fsync_tree_dirs\n"
                           "def dying(root): os.kill(os.getpid(), 9)\n"
                           "finish.fsync_tree_dirs = dying\n"),
    # killed after removing the step state, before the rename that publishes the bundle
    "before the rename": ("import os; from engine.snapshot import finish\n"
                          "finish.publish = lambda *a: os.kill(os.getpid(), 9)\n"),
}


@pytest.mark.parametrize("moment", sorted(KILLERS))
def test_a_finish_killed_at_its_end_publishes_a_verified_bundle_when_run_again(tmp_path: Path, moment: str):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 300, 8)
    out = tmp_path / "snaps"
    staging = api.start_export(out)
    api.export_embeddings(uri, staging)
    api.export_artifacts(uri, staging)
    code = KILLERS[moment] + "from engine import api; import sys; api.finish_export(sys.argv[1])\n"
    assert subprocess.run([sys.executable, "-c", code, staging], timeout=120).returncode == -9
    assert layout.manifest_path(Path(staging)).is_file()
    assert [p.name for p in out.iterdir() if layout.is_bundle_name(p.name)] == []  # nothing published yet
    result = api.finish_export(staging)  # the retried step
    assert verify_bundle(result["path"]).ok and not Path(staging).exists()
    assert result["content_hash"] == api.export_snapshot(uri, tmp_path / "again")["content_hash"]
    assert api.snapshot_catalog(out)["ok"]
