"""Memory of an export's writing half and of ``verify_bundle`` does not grow with the bundle: the peak
RSS of a subprocess (above what it held after its imports) is measured at 50,000 and 400,000 rows of
64 dimensions; the larger bundle holds 90 MB more vectors, a whole-file or whole-store read would
show it, a bounded pipeline (one row group, a few batches) does not."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

DIMS = 64
SMALL, LARGE = 50_000, 400_000

CHILD = """
import json, sys
from pathlib import Path
import numpy as np
from engine.repository.base import StoreSettings
from engine.snapshot import verify_bundle
from engine.snapshot.writer import finish_bundle, start_bundle, write_artifacts, write_embeddings
from engine.synthetic import synthetic_batches

def status(key):
    return next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith(key)) * 1024

step, where, count, dims = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
start = status("VmRSS:")
if step == "export":
    staging = start_bundle(where)
    write_embeddings(staging, synthetic_batches(count, dims, batch_size=4096),
                     settings=StoreSettings(dims, "cosine", "flat", {}), backend="pgvector", uri="synthetic")
    write_artifacts(staging, [])
    out = {"path": finish_bundle(staging, catalog=False).path}
else:
    report = verify_bundle(where, max_workers=1)
    out = {"ok": report.ok, "rows": report.stats.get("rows_checked")}
print(json.dumps({**out, "growth": status("VmHWM:") - start}))
"""


def run(step: str, where: Path, count: int) -> dict:
    done = subprocess.run([sys.executable, "-c", CHILD, step, str(where), str(count), str(DIMS)],
                          capture_output=True, text=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc to read the peak RSS")
def test_export_writing_and_verify_keep_memory_flat_as_the_bundle_grows(tmp_path):
    grown = {}
    for count in (SMALL, LARGE):
        export = run("export", tmp_path / f"snaps-{count}", count)
        verify = run("verify", Path(export["path"]), count)
        assert verify["ok"] and verify["rows"] == count
        grown[count] = (export["growth"], verify["growth"])
    extra_vectors = (LARGE - SMALL) * DIMS * 4  # 90 MB
    for i, step in enumerate(("export", "verify")):
        small, large = grown[SMALL][i], grown[LARGE][i]
        assert large - small < extra_vectors / 2, (  # measured: about 22 MB more at 8x the rows
            f"{step}: peak RSS grew by {small / 1e6:.0f} MB at {SMALL:,} rows and {large / 1e6:.0f} MB at "
            f"{LARGE:,} rows ({extra_vectors / 1e6:.0f} MB more vectors)")
