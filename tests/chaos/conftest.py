"""Fixtures of the reliability campaign: the seed, the ledger of figures, and the sources trials share.

``CHAOS_SEED`` (or ``pytest --seed N``) seeds everything; without one the sample in ``make test``
uses seed 1 and ``make chaos`` a fresh seed it prints. ``CHAOS_FULL=1`` runs every trial (``make
chaos``); otherwise a small sample runs. ``CHAOS_REPORT=FILE`` writes the figures as JSON at the end.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

import pytest

from chaos.chaos_support import ROOT, Chaos, Ledger, full_run


@pytest.fixture(scope="session")
def chaos(request: pytest.FixtureRequest):
    given = os.environ.get("CHAOS_SEED") or request.config.getoption("--seed", default=None)
    seed = int(given) if given not in (None, "") else 1
    ledger = Ledger(seed, full_run())
    started = time.time()
    yield Chaos(seed, full_run(), ledger)
    report = os.environ.get("CHAOS_REPORT")
    if report:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=ROOT).stdout.strip()
        ledger.meta.update(started_utc=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
                           minutes=round((time.time() - started) / 60, 1), commit=commit,
                           machine=f"{platform.system()} {platform.machine()}, {os.cpu_count()} cores")
        Path(report).write_text(json.dumps(ledger.to_json(), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    print(f"\nchaos campaign seed: {seed} (reproduce with CHAOS_SEED={seed})")
