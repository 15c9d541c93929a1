"""The reliability campaign's machinery: seeds, trial counts, the ledger of figures, killed children, invariants.

Every trial draws its randomness from ``random.Random(f"{seed}:{operation}:{trial}")``, so one
seed reproduces the whole campaign and one trial can be re-run on its own
(``CHAOS_SEED=S CHAOS_ONLY=operation:trial``). A trial never stops at its first broken invariant:
it records every *violation* in the :class:`Ledger`, and the test of that operation fails at the
end, naming the seed and each failing trial. ``make chaos`` writes the ledger to
``docs/reliability.json``, which ``tools/render_reliability.py`` renders into ``docs/reliability.md``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHILD = Path(__file__).with_name("chaos_child.py")


# --- configuration ----------------------------------------------------------------------------------


def full_run() -> bool:
    return os.environ.get("CHAOS_FULL", "") not in ("", "0")


def only() -> tuple[str, int] | None:
    """``CHAOS_ONLY=operation:trial`` re-runs one trial of one operation."""
    text = os.environ.get("CHAOS_ONLY")
    if not text:
        return None
    op, _, trial = text.rpartition(":")
    return op, int(trial)


@dataclass
class Chaos:
    """The campaign's seed and sizes; ``trials(op, full=N, sample=n)`` gives the trial numbers to run."""

    seed: int
    full: bool
    ledger: Ledger

    def trials(self, op: str, *, full: int, sample: int = 1) -> list[int]:
        chosen = only()
        if chosen is not None:
            return [chosen[1]] if chosen[0] == op else []
        count = full if self.full else sample
        cap = os.environ.get("CHAOS_MAX_TRIALS")  # a quicker partial campaign while developing
        return list(range(min(count, int(cap)) if cap else count))

    def rng(self, op: str, trial: int) -> random.Random:
        return random.Random(f"{self.seed}:{op}:{trial}")

    def reproduce(self, op: str, trial: int) -> str:
        return f"CHAOS_SEED={self.seed} CHAOS_ONLY={op}:{trial}"


@dataclass
class OpFigures:
    trials: int = 0
    killed: int = 0  # SIGKILL landed while the operation ran
    finished: int = 0  # the operation ended before the kill moment
    violations: int = 0
    seconds: float = 0.0
    notes: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)


class Ledger:
    """Figures per operation, written as JSON at the end of the session when ``CHAOS_REPORT`` is set."""

    def __init__(self, seed: int, full: bool) -> None:
        self.seed = seed
        self.full = full
        self.ops: dict[str, OpFigures] = {}
        self.meta: dict[str, Any] = {}

    def op(self, name: str) -> OpFigures:
        return self.ops.setdefault(name, OpFigures())

    def note(self, op: str, key: str, n: int = 1) -> None:
        notes = self.op(op).notes
        notes[key] = notes.get(key, 0) + n

    def to_json(self) -> dict[str, Any]:
        return {"seed": self.seed, "full": self.full, **self.meta,
                "operations": {name: {"trials": f.trials, "killed": f.killed, "finished": f.finished,
                                      "violations": f.violations, "seconds": round(f.seconds, 1),
                                      "notes": dict(sorted(f.notes.items())), "failures": f.failures[:20]}
                               for name, f in sorted(self.ops.items())}}


class Trial:
    """One trial of one operation: collects violations; ``ok(cond, text)`` records one when ``cond`` is false."""

    def __init__(self, chaos: Chaos, op: str, number: int) -> None:
        self.chaos, self.op, self.number = chaos, op, number
        self.rng = chaos.rng(op, number)
        self.violations: list[str] = []
        self.started = time.monotonic()
        self.killed: bool | None = None  # set by the test: did the SIGKILL land while the command ran?

    def ok(self, condition: object, text: str) -> bool:
        if not condition:
            self.violations.append(text)
        return bool(condition)

    def note(self, key: str) -> None:
        self.chaos.ledger.note(self.op, key)

    def close(self) -> None:
        killed = self.killed
        figures = self.chaos.ledger.op(self.op)
        figures.trials += 1
        figures.seconds += time.monotonic() - self.started
        if killed is True:
            figures.killed += 1
        elif killed is False:
            figures.finished += 1
        if self.violations:
            figures.violations += 1
            figures.failures.append(f"trial {self.number} ({self.chaos.reproduce(self.op, self.number)}): "
                                    + "; ".join(self.violations))


@contextmanager
def trial(chaos: Chaos, op: str, number: int) -> Iterator[Trial]:
    t = Trial(chaos, op, number)
    try:
        yield t
    except Exception as exc:  # noqa: BLE001 - an invariant check that crashed is a violation, recorded
        t.violations.append(f"the check itself raised {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")
    finally:
        t.close()


def assert_no_violations(chaos: Chaos, op: str) -> None:
    figures = chaos.ledger.op(op)
    assert figures.violations == 0, (f"{op}: {figures.violations} of {figures.trials} trials broke an invariant "
                                     f"(seed {chaos.seed}):\n" + "\n".join(figures.failures))


# --- killed children ----------------------------------------------------------------------------------


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VECTOR_ENDPOINT", "PROCOS_TOKEN")}
    env.update(extra or {})
    return env


@dataclass
class Run:
    killed: bool
    returncode: int
    stdout: str
    stderr: str
    seconds: float  # from "go" to exit (or to the kill)
    pid: int


def run_child(argv: list[str], *, delay: float | None, env: dict[str, str] | None = None,
              timeout: float = 600) -> Run:
    """Run ``procos argv`` in a child; SIGKILL it ``delay`` seconds after it said ``go`` (None: let it end)."""
    child = subprocess.Popen([sys.executable, str(CHILD), json.dumps([str(a) for a in argv])],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env or child_env(), cwd=ROOT,
                             text=True)
    try:
        line = child.stdout.readline()
        if line != "go\n":
            child.wait(timeout)
            raise RuntimeError(f"the chaos child did not start: {line!r} {child.stderr.read()[-2000:]}")
        started = time.monotonic()
        killed = False
        try:
            child.wait(timeout=timeout if delay is None else delay)
        except subprocess.TimeoutExpired:
            if delay is None:
                raise
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=60)
            killed = True
        seconds = time.monotonic() - started
        out, err = child.communicate(timeout=60)
        return Run(killed, child.returncode, line[3:] + out, err, seconds, child.pid)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def calibrate(argv_for: Callable[[int], list[str]], prepare: Callable[[int], None] | None = None,
              env: dict[str, str] | None = None, runs: int = 2) -> float:
    """How long the command takes unkilled (the shortest of ``runs``), after ``prepare(i)``."""
    shortest = float("inf")
    for i in range(runs):
        if prepare is not None:
            prepare(-1 - i)
        done = run_child(argv_for(-1 - i), delay=None, env=env)
        assert done.returncode == 0, f"calibration run failed: {done.stderr[-2000:]}"
        shortest = min(shortest, done.seconds)
    return shortest


def kill_moment(t: Trial, duration: float) -> float:
    """A uniformly random moment over the command's run, a little past its usual end."""
    return t.rng.uniform(0.0, duration * 1.15)


# --- what a store and a bundle hold ----------------------------------------------------------------


Rows = dict[str, tuple[int, str]]  # id -> (version, sha1 of vector bytes + metadata)


def fingerprint(batch) -> Rows:
    out: Rows = {}
    for i, rid in enumerate(batch.ids):
        digest = hashlib.sha1(batch.vectors[i].astype("<f4").tobytes() + batch.metadata[i].encode()).hexdigest()
        out[rid] = (int(batch.versions[i]), digest)
    return out


def store_rows(uri: str) -> Rows:
    from engine.repository import open_repository

    repo = open_repository(uri, create=False)
    try:
        rows: Rows = {}
        for batch in repo.iter_batches(10_000):
            rows.update(fingerprint(batch))
        return rows
    finally:
        repo.close()


def bundle_rows(path: str | Path) -> tuple[Rows, list[str], list[int]]:
    """The bundle's rows, its ids in row order, and the cumulative row counts of its import batches."""
    from engine.snapshot import reader
    from engine.snapshot.importer import IMPORT_BATCH

    rows: Rows = {}
    order: list[str] = []
    bounds = [0]
    with reader.open_bundle(path) as root:
        doc = reader.read_manifest(root)
        for batch in reader.iter_batches(root, doc, IMPORT_BATCH):  # an append commits batch by batch
            rows.update(fingerprint(batch))
            order.extend(batch.ids)
            bounds.append(bounds[-1] + len(batch))
    return rows, order, bounds


def answers_queries(uri: str, t: Trial) -> None:
    """The store opens, counts, and answers a query with as many hits as it can."""
    import numpy as np

    from engine.repository import open_repository

    repo = open_repository(uri, create=False)
    try:
        count = repo.count()
        dims = repo.dimensions
        if dims:
            hits = repo.query(np.ones(dims, dtype=np.float32), 5)
            t.ok(len(hits) == min(5, count), f"a query returned {len(hits)} hits from a store of {count}")
    finally:
        repo.close()


def check_snapshots_folder(out: Path, t: Trial, *, content_hash: str, records: int,
                           clean: Callable[[], Any] | None = None) -> None:
    """No complete-looking bundle or archive that fails verify or holds other content; leftovers are
    listed with a dead writer and ``clean()`` (default ``remove_stale``; e.g. the next export) removes them."""
    from engine.snapshot import layout, verify_bundle
    from engine.snapshot.staging import leftovers, remove_stale

    if not out.is_dir():
        return
    for child in sorted(out.iterdir()):
        name = child.name
        if layout.is_bundle_name(name) or layout.is_archive(child):
            report = verify_bundle(child)
            if t.ok(report.ok, f"{name} looks complete but fails verify: {report.summary()[:300]}"):
                t.ok(report.manifest.get("content_hash") == content_hash,
                     f"{name} verifies but holds content {report.manifest.get('content_hash')}")
                t.ok(report.manifest.get("record_count") == records, f"{name} holds "
                     f"{report.manifest.get('record_count')} records, not {records}")
        elif name == layout.CATALOG or layout.is_staging_name(name) or layout.pack_temp_writer(name):
            continue
        else:
            t.ok(False, f"unexpected entry {name} in the snapshots folder")
    items = leftovers(out)
    if items:
        t.note("leftovers")
    t.ok(all(item["writer_alive"] is False for item in items),
         f"leftovers whose writer is not known to be gone: {items}")
    if clean is None:
        remove_stale(out)
    else:
        clean()
    t.ok(leftovers(out) == [], f"cleaning up left {leftovers(out)}")
