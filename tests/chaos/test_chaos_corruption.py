"""Corruption of every file kind of a bundle (full and delta) and of a packed archive, at random positions.

Damage: a flipped byte, truncation, appended bytes, a deleted file, a stray file. After each:
``verify`` fails and a finding names the damaged file (for an archive: the archive); ``procos
snapshot import`` exits non-zero with exactly an ``Error:`` and a ``Try:`` line naming the bundle
and the file, writes nothing into an existing target and creates no new one, and leaves no
temporary folder behind.

Damage targets are a registry (:data:`TARGETS`): one function that makes a pristine copy of a kind
of artifact. "Corrupt an encrypted archive" is one more entry (``"encrypted": encrypted_archive``,
a function that encrypts the packed archive) once encrypted bundles exist; the mutations apply to
any file.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from pathlib import Path

import pytest
from click.testing import CliRunner

from chaos.chaos_support import assert_no_violations, store_rows, trial
from engine import api
from engine.cli import cli
from engine.repository import open_repository
from engine.snapshot import layout, pack_bundle, verify_bundle
from engine.synthetic import record_id, synthetic_artifacts, synthetic_batches

FOLDER_MUTATIONS = ("flip", "truncate", "append", "delete", "stray")
FILE_MUTATIONS = ("flip", "truncate", "append")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("chaos-corrupt")
    uri = f"faiss:{root / 'source'}?index=flat"
    repo = open_repository(uri, dimensions=8)
    repo.bulk_load(synthetic_batches(600, 8, seed=61))
    for path, data in synthetic_artifacts(61).items():
        repo.artifacts.write(path, data)
    repo.close()
    full = Path(api.export_snapshot(uri, root / "snaps", shard_rows=250)["path"])  # three shards
    repo = open_repository(uri)
    repo.write_batch(next(synthetic_batches(50, 8, seed=62)))
    repo.delete([record_id(i) for i in range(590, 600)])
    repo.close()
    delta = Path(api.export_delta(uri, full, root / "snaps")["path"])
    archive = pack_bundle(full)
    target = f"faiss:{root / 'target'}?index=flat"
    repo = open_repository(target, dimensions=8)
    repo.bulk_load(synthetic_batches(40, 8, seed=63))
    repo.close()
    return {"root": root, "bundle": full, "delta": delta, "archive": archive, "target": root / "target"}


def copy_folder(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest / src.name)
    return dest / src.name


def copy_file(src: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(src, dest / src.name)
    return dest / src.name


# target kind -> (make a pristine copy into a folder, mutations that apply)
TARGETS: dict[str, tuple[Callable[[dict, Path], Path], tuple[str, ...]]] = {
    "bundle": (lambda w, d: copy_folder(w["bundle"], d), FOLDER_MUTATIONS),
    "delta": (lambda w, d: copy_folder(w["delta"], d), FOLDER_MUTATIONS),
    "archive": (lambda w, d: copy_file(w["archive"], d), FILE_MUTATIONS),
}


def file_kind(rel: str) -> str:
    if layout.shard_index(rel) is not None:
        return "shard"
    return layout.artifact_kind(rel) or rel


def damage(path: Path, mutation: str, rng) -> Path:
    """Apply ``mutation`` to the file ``path`` (or, for ``stray``, next to it); return the file concerned."""
    if mutation == "stray":
        folder = path.parent if rng.random() < 0.6 else path.parent / rng.choice(["extra", "bpmn", "embeddings"])
        folder.mkdir(exist_ok=True)
        stray = folder / rng.choice(["notes.txt", "part-00099.parquet", "x_v1.bpmn", ".hidden", "manifest.json.bak"])
        stray.write_bytes(os.urandom(rng.randint(0, 200)))
        return stray
    if mutation == "delete":
        path.unlink()
        return path
    data = bytearray(path.read_bytes())
    if mutation == "flip":
        if not data:
            data = bytearray(b"\x00")
        else:
            i = rng.randrange(len(data))
            data[i] ^= rng.randint(1, 255)
    elif mutation == "truncate":
        data = data[:rng.randrange(len(data))] if data else data
        if not data and not path.stat().st_size:
            data = bytearray(b"x")  # an empty file cannot be shortened: change it instead
    elif mutation == "append":
        data += os.urandom(rng.randint(1, 64))
    path.write_bytes(bytes(data))
    return path


@contextmanager
def private_tmp(folder: Path):
    folder.mkdir(parents=True, exist_ok=True)
    saved = tempfile.tempdir
    tempfile.tempdir = str(folder)
    try:
        yield folder
    finally:
        tempfile.tempdir = saved


def kinds_of(pristine: dict) -> list[tuple[str, str]]:
    """Every (target, file kind) pair, the unit the trials cycle through."""
    pairs = []
    for target in TARGETS:
        if target == "archive":
            pairs.append((target, "archive"))
            continue
        files, _ = layout.relative_files(pristine[target])
        pairs.extend((target, kind) for kind in sorted({file_kind(rel) for rel in files}))
    return pairs


def test_corruption_is_found_named_and_never_imported(chaos, pristine):
    op = "corruption"
    pairs = kinds_of(pristine)
    runner = CliRunner()
    for n in chaos.trials(op, full=1000, sample=len(pairs)):
        with trial(chaos, op, n) as t:
            target_kind, kind = pairs[n % len(pairs)]
            make, mutations = TARGETS[target_kind]
            work = pristine["root"] / f"trial{n}"
            copy = make(pristine, work / "in")
            mutation = t.rng.choice(mutations)
            if target_kind == "archive":
                damaged = damage(copy, mutation, t.rng)
                rel = copy.name
            else:
                files, _ = layout.relative_files(copy)
                rel = t.rng.choice([f for f in files if file_kind(f) == kind])
                damaged = damage(copy / rel, mutation, t.rng)
                rel = damaged.relative_to(copy).as_posix()
            t.note(f"{target_kind}:{kind}:{mutation}")
            report = verify_bundle(copy)
            t.ok(not report.ok, f"verify passed after {mutation} of {rel}")
            named = [f for f in report.errors if rel in f.path or rel in f.problem]
            t.ok(named, f"no finding names {rel} after {mutation}: {[f.to_json() for f in report.errors][:3]}")
            existing = t.rng.random() < 0.5
            if existing:
                dest = work / "target"
                shutil.copytree(pristine["target"], dest)
                before = (store_rows(f"faiss:{dest}"), api.store_stats(f"faiss:{dest}")["sequence"])
            else:
                dest = work / "new-target"
            with private_tmp(work / "tmp") as tmp:
                result = runner.invoke(cli, ["snapshot", "import", str(copy), f"faiss:{dest}", "--json"])
                t.ok(list(tmp.iterdir()) == [], f"import left {list(tmp.iterdir())} in the temporary folder")
            lines = result.stderr.splitlines()
            t.note(f"import_exit_{result.exit_code}")
            t.ok(result.exit_code not in (0, 2), f"import exited {result.exit_code} after {mutation} of {rel}")
            t.ok(len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Try: "),
                 f"import did not print one Error and one Try line: {result.stderr[-400:]!r}")
            t.ok(result.exception is None or isinstance(result.exception, SystemExit),
                 f"import raised {result.exception!r}")
            t.ok("Traceback" not in result.stderr, "a traceback was printed")
            if lines:
                t.ok(copy.name in lines[0], f"the error does not name the bundle: {lines[0][:200]}")
                t.ok(rel in lines[0], f"the error does not name the damaged file {rel}: {lines[0][:300]}")
            if existing:
                after = (store_rows(f"faiss:{dest}"), api.store_stats(f"faiss:{dest}")["sequence"])
                t.ok(after == before, "the failed import changed the existing target")
            else:
                t.ok(not dest.exists(), "the failed import created the target")
            shutil.rmtree(work, ignore_errors=True)
    assert_no_violations(chaos, op)
