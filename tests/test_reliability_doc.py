"""docs/reliability.md shows the figures of the last full campaign, as make chaos wrote them to docs/reliability.json."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_reliability_doc_shows_the_last_full_campaign():
    data = json.loads((ROOT / "docs" / "reliability.json").read_text())
    assert data["full"] is True, "docs/reliability.json is not from a full run (make chaos)"
    ops = data["operations"]
    kills = [name for name in ops if name.startswith(("export-", "import-", "pack", "unpack", "workflow-"))]
    assert len(kills) >= 13 and all(ops[name]["trials"] >= 100 for name in kills)
    assert ops["corruption"]["trials"] >= 500
    done = subprocess.run([sys.executable, "tools/render_reliability.py", "--check"], cwd=ROOT)
    assert done.returncode == 0, "docs/reliability.md does not show docs/reliability.json: run " \
                                 "python tools/render_reliability.py"
