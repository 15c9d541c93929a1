"""A wheel install ships the BPMN processes and their versioned scripts, not only a source checkout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_ships_processes_scripts_and_the_manifest_schema(tmp_path: Path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                    "-w", str(tmp_path), str(ROOT)], check=True, capture_output=True)
    wheel = next(tmp_path.glob("procos_knowledge-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    data = "procos_knowledge-0.1.0.data/data/share/procos/"
    for path in [*ROOT.glob("processes/*.bpmn"), *ROOT.glob("scripts/v1/*.py"), *ROOT.glob("scripts/migrations/*.py")]:
        assert data + path.relative_to(ROOT).as_posix() in names, f"{path} is not in the wheel"
    assert "engine/schemas/manifest.schema.json" in names
