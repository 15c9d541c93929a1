"""The quick lift-and-shift playbook, end to end on embedded defaults (``procos demo``).

Seed a FAISS source store with synthetic records and artifacts, run ``export_snapshot`` (dev:
auto-approved), ``import_snapshot`` into an embedded pgvector target, ``validate_snapshot`` and a
drift check, and write a short report. Everything it makes stays under one folder, which has its own
``PROCOS_HOME`` (``<folder>/.procos``): its config says ``environment: dev`` for that folder only, and its
user store holds one user, ``demo`` (Admin, Owner), whose token is never printed.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from engine.errors import ProcosError, WorkflowError

from .service import WorkflowService
from .settings import load_settings

DEMO_USER = "demo"


def default_folder(base: Path | None = None) -> Path:
    """A new ``procos-demo-YYYYMMDD_HHMMSS`` folder name in ``base`` (default: the current folder)."""
    base = base or Path.cwd()
    stem = f"procos-demo-{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}"
    candidate, n = base / stem, 2
    while candidate.exists():
        candidate, n = base / f"{stem}_{n}", n + 1
    return candidate


def _run(service: WorkflowService, name: str, variables: dict[str, Any]) -> dict[str, Any]:
    result = service.start_process(name, variables, user=DEMO_USER)
    if result["state"] != "completed":
        shown = service.show_instance(result["instance_id"])
        raise WorkflowError(f"process {name} ended in state {result['state']!r}: {shown.get('error')}",
                            hint=f"inspect it with: PROCOS_HOME={service.settings.home} "
                                 f"procos instance show {result['instance_id']}")
    return result


def run_demo(folder: str | Path | None = None, *, count: int = 2_000, dim: int = 64, seed: int = 0) -> dict[str, Any]:
    """Play the lift-and-shift playbook in ``folder`` (created; must be new or empty) and report."""
    from engine import api

    root = Path(folder).resolve() if folder else default_folder()
    if root.exists() and any(root.iterdir()):
        raise ProcosError(f"{root} already exists and is not empty", hint="give a new folder with --dir")
    root.mkdir(parents=True, exist_ok=True)
    home = root / ".procos"
    os.environ["PROCOS_HOME"] = str(home)  # instances, events and users stay in the folder
    os.environ.pop("PROCOS_CONFIG", None)
    os.environ["PROCOS_ENV"] = "dev"  # dev for this folder only (this process ends with the demo)
    home.mkdir(mode=0o700)
    (home / "config.yaml").write_text("# the demo folder's own deployment: no approvals\nenvironment: dev\n",
                                      encoding="utf-8")
    service = WorkflowService(load_settings(environment="dev"))
    service.directory.add(service.directory.identity(DEMO_USER), DEMO_USER, ["Admin", "Owner"])
    source = f"faiss:{root / 'source'}"
    target = f"postgresql+embedded:{root / 'target-pg'}"
    timings: dict[str, float] = {}
    report: dict[str, Any] = {"folder": str(root), "source": source, "target": target}

    def timed(step: str, fn, *args, **kwargs):
        started = time.perf_counter()
        out = fn(*args, **kwargs)
        timings[step] = round(time.perf_counter() - started, 3)
        return out

    try:
        seeded = timed("seed", api.seed_store, source, count, dim, seed)
        exported = timed("export_snapshot", _run, service, "export_snapshot",
                         {"source": source, "out_dir": str(root / "snapshots")})
        bundle = exported["data"]["bundle"]
        verified = timed("verify", api.verify_snapshot, bundle)
        imported = timed("import_snapshot", _run, service, "import_snapshot",
                         {"bundle": bundle, "target": target, "mode": "replace"})
        validated = timed("validate_snapshot", _run, service, "validate_snapshot",
                          {"source": source, "target": target, "queries": 20, "k": 10})
        drift = timed("drift_check", api.drift_check, target, bundle)
    finally:
        service.close()
    validation = validated["data"].get("validation", {})
    report.update({
        "bundle": bundle, "records": {"source": seeded["count"], "exported": verified["manifest"].get("record_count"),
                                      "imported": imported["data"].get("imported")},
        "checksums_ok": verified["ok"], "verify_errors": verified["errors"],
        "validation": {"passed": bool(validated["data"].get("passed")), "failures": validation.get("failures", []),
                       "queries": validation.get("queries"), "mean_overlap": validation.get("mean_overlap")},
        "drift": {"drifted": len(drift["drifted"]), "missing": len(drift["missing"]),
                  "unexpected": len(drift["unexpected"]), "checked": drift["checked"]},
        "instances": {"export": exported["instance_id"], "import": imported["instance_id"],
                      "validate": validated["instance_id"]},
        "timings_seconds": timings,
    })
    report["passed"] = bool(verified["ok"] and report["validation"]["passed"] and not drift["drift"]
                            and report["records"]["imported"] == seeded["count"])
    (root / "demo_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    (root / "demo_report.md").write_text(render(report), encoding="utf-8")
    return report


def render(report: dict[str, Any]) -> str:
    """The plain report: PASS or FAIL first, then where things are and what was checked."""
    rec, val, drift = report["records"], report["validation"], report["drift"]
    problems = len(report["verify_errors"])
    lines = [
        f"ProcOS lift-and-shift demo: {'PASS' if report['passed'] else 'FAIL'}",
        f"  folder      {report['folder']}",
        f"  bundle      {report['bundle']}",
        f"  records     source {rec['source']}, exported {rec['exported']}, imported {rec['imported']}",
        f"  checksums   {'all verified' if report['checksums_ok'] else f'{problems} problem(s)'}",
        f"  validation  {'passed' if val['passed'] else 'FAILED'}: {val['queries']} queries, "
        f"mean top-10 overlap {val['mean_overlap']}",
        f"  drift       {drift['drifted']} drifted, {drift['missing']} missing, "
        f"{drift['unexpected']} unexpected of {drift['checked']} checked",
        "  timings     " + ", ".join(f"{k} {v:.2f}s" for k, v in report["timings_seconds"].items()),
    ]
    lines += [f"  failure     {f.get('check')}: {f.get('message')}" for f in val["failures"]]
    return "\n".join(lines) + "\n"
