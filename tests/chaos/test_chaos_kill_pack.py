"""SIGKILL at random moments of ``snapshot pack`` and of unpacking (``snapshot verify ARCHIVE``).

Pack: the archive is absent or byte-identical to the reference pack (packing is reproducible) and
verifies; a leftover temporary archive has a dead writer and is removed; the bundle is untouched.
Unpack: the temporary folder holds a bundle-named folder only while it is complete (it unpacks under
``.partial``, is renamed at the end, and is renamed away again before it is deleted), so what a kill
leaves either verifies or is hidden; the next unpack into the same parent removes it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from chaos.chaos_support import assert_no_violations, calibrate, child_env, kill_moment, run_child, trial
from engine import api
from engine.repository import open_repository
from engine.snapshot import layout, pack_bundle, verify_bundle
from engine.snapshot.staging import leftovers, remove_stale
from engine.snapshot.unpack import UNPACK_PREFIX, safe_unpack
from engine.synthetic import synthetic_artifacts, synthetic_batches


@pytest.fixture(scope="module")
def packed(chaos, tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("chaos-pack")
    uri = f"faiss:{root / 'source'}?index=flat"
    repo = open_repository(uri, dimensions=64)
    repo.bulk_load(synthetic_batches(40_000 if chaos.full else 10_000, 64, seed=41, batch_size=10_000))
    for path, data in synthetic_artifacts(41).items():
        repo.artifacts.write(path, data)
    repo.close()
    bundle = Path(api.export_snapshot(uri, root / "snaps")["path"])
    archive = pack_bundle(bundle)
    return {"root": root, "bundle": bundle, "archive": archive,
            "sha": hashlib.sha256(archive.read_bytes()).hexdigest()}


def test_killed_pack_leaves_the_reproducible_archive_or_nothing(chaos, packed):
    op = "pack"
    work = packed["root"] / "pack-work"
    bundle = work / packed["bundle"].name
    shutil.copytree(packed["bundle"], bundle)
    archive = layout.archive_path(bundle)

    def reset(_: int = 0) -> None:
        archive.unlink(missing_ok=True)
        remove_stale(work)

    argv = ["snapshot", "pack", str(bundle), "--json"]
    duration = calibrate(lambda n: argv, reset, runs=2 if chaos.full else 1)
    for n in chaos.trials(op, full=100, sample=1):
        with trial(chaos, op, n) as t:
            reset()
            run = run_child(argv, delay=kill_moment(t, duration))
            t.killed = run.killed
            if not run.killed:
                t.ok(run.returncode == 0 and json.loads(run.stdout)["archive"] == str(archive),
                     f"pack failed unkilled: {run.stderr[-500:]}")
            if archive.exists():
                t.note("archive_written")
                t.ok(hashlib.sha256(archive.read_bytes()).hexdigest() == packed["sha"],
                     "the archive differs from the reference pack")
                if n % 10 == 0:
                    t.ok(verify_bundle(archive).ok, "the archive fails verify")
            items = leftovers(work)
            if items:
                t.note("temporary_archive_left")
            t.ok(all(i["kind"] == "pack" and i["writer_alive"] is False for i in items), f"leftovers {items}")
            remove_stale(work)
            t.ok(leftovers(work) == [], "remove_stale kept a dead pack's temporary archive")
            t.ok(sorted(p.name for p in work.iterdir()) == sorted({bundle.name} | ({archive.name} if archive.exists()
                                                                                    else set())),
                 f"unexpected files next to the bundle: {sorted(p.name for p in work.iterdir())}")
            if n % 10 == 0:
                t.ok(verify_bundle(bundle).ok, "packing changed the bundle")
    assert_no_violations(chaos, op)


def test_killed_unpack_never_leaves_a_complete_looking_bundle(chaos, packed):
    op = "unpack"
    tmp_root = packed["root"] / "unpack-tmp"
    argv = ["snapshot", "verify", str(packed["archive"]), "--json"]

    def tmpdir(n: int) -> Path:
        folder = tmp_root / f"t{n}"
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    duration = calibrate(lambda n: argv, env=child_env({"TMPDIR": str(tmpdir(-1))}), runs=2 if chaos.full else 1)
    for n in chaos.trials(op, full=100, sample=1):
        with trial(chaos, op, n) as t:
            folder = tmpdir(n)
            run = run_child(argv, delay=kill_moment(t, duration), env=child_env({"TMPDIR": str(folder)}))
            t.killed = run.killed
            left = sorted(folder.iterdir())
            if not run.killed:
                t.ok(run.returncode == 0 and json.loads(run.stdout)["ok"] is True, f"verify failed: {run.stderr[-300:]}")
                t.ok(left == [], f"a finished verify left {left}")
            for entry in left:
                t.ok(entry.name.startswith(UNPACK_PREFIX), f"unexpected {entry.name} in the temporary folder")
                inside = {p.name for p in entry.iterdir()} if entry.is_dir() else set()
                bundles = {name for name in inside if layout.is_bundle_name(name)}
                hidden = {name for name in inside - bundles if name.startswith(".")}  # .partial, .writer.json,
                t.ok(inside == bundles | hidden and len(bundles) <= 1,  # or a bundle renamed away to be deleted
                     f"a killed unpack left {sorted(inside)}")
                for name in bundles:  # renamed only once complete (killed while verifying): it verifies
                    t.note("complete_unpack_left")
                    t.ok(verify_bundle(entry / name).ok, f"a killed unpack left {name}, which fails verify")
            if left:
                t.note("unpack_folder_left")
                tmp, root = safe_unpack(packed["archive"], folder)  # the next unpack cleans up
                t.ok([p.name for p in folder.iterdir()] == [tmp.name], "the next unpack kept a dead unpack's folder")
                shutil.rmtree(tmp)
    assert_no_violations(chaos, op)
