"""A full disk during export, pack, import (from a folder, and from an archive unpacked into a full TMPDIR) and pull.

A small filesystem is mounted for the test (``mount -t tmpfs -o size=...``, which needs root); where
mounting is not allowed, the child runs with ``RLIMIT_FSIZE`` (and SIGXFSZ ignored), so a write
past the limit fails with EFBIG at the same OS boundary. ``docs/reliability.json`` records which ran.
Each trial leaves a random amount of free space (a ballast file fills the rest), then runs the
command unkilled. It either succeeds (the result verifies) or fails cleanly: exit 1 with one
``Error:`` and one ``Try:`` line, no partial bundle or archive that looks complete, no leftovers,
the source untouched (records, sequence, freeze flag). ``pull`` downloads the bundle (its folder or
its ``.tar.zst``, at random) from a moto S3 server into the small filesystem: nothing in the folder
but the finished, verified bundle or the hidden partial download, the remote objects unchanged, the
same pull run again with room to spare finishes it, and a pull into a roomy folder verifies.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import pytest

from chaos.chaos_support import (
    CHILD,
    ROOT,
    Run,
    answers_queries,
    assert_no_violations,
    bundle_rows,
    check_snapshots_folder,
    child_env,
    store_rows,
    trial,
)
from engine import api
from engine.repository import open_repository
from engine.snapshot import layout, pack_bundle, verify_bundle
from engine.snapshot.staging import leftovers
from engine.synthetic import synthetic_artifacts, synthetic_batches
from engine.transport.location import pull_folder

FULL_WORDS = ("No space left on device", "no space left", "disk is full", "File too large", "ran out of disk space")


class SmallDisk:
    """A mounted tmpfs of ``size`` bytes, or (no mount allowed) a file size limit for the child."""

    def __init__(self, base: Path, size: int) -> None:
        self.path = base / f"disk-{uuid.uuid4().hex[:6]}"
        self.path.mkdir(parents=True)
        self.size = size
        forced = os.environ.get("CHAOS_DISK_METHOD")  # "rlimit" tries the fallback where mounting works too
        done = None if forced == "rlimit" else subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(self.path)], capture_output=True, text=True)
        self.method = "tmpfs" if done is not None and done.returncode == 0 else "RLIMIT_FSIZE"
        self.limit: int | None = None

    def leave_free(self, free: int) -> None:
        """Fill the filesystem so that about ``free`` bytes stay free (tmpfs), or cap file sizes at ``free``."""
        ballast = self.path / ".ballast"
        ballast.unlink(missing_ok=True)
        if self.method == "RLIMIT_FSIZE":
            self.limit = max(free, 1)
            return
        usage = shutil.disk_usage(self.path)
        fill = max(0, usage.free - free)
        with open(ballast, "wb") as fh:
            while fill > 0:
                chunk = min(fill, 1 << 20)
                try:
                    fh.write(b"\0" * chunk)
                except OSError:
                    break
                fill -= chunk

    def preexec(self):
        limit = self.limit
        if limit is None:
            return None

        def apply() -> None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG instead
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return apply

    def clear(self) -> None:
        for child in self.path.iterdir():
            shutil.rmtree(child) if child.is_dir() else child.unlink()

    def close(self) -> None:
        if self.method == "tmpfs":
            subprocess.run(["umount", str(self.path)], check=False)


@pytest.fixture(scope="module")
def world(chaos, tmp_path_factory) -> dict:
    root = Path(tempfile.mkdtemp(prefix="procos-chaos-disk-"))  # outside pytest's tree: mounts go here
    uri = f"faiss:{root / 'source'}?index=flat"
    repo = open_repository(uri, dimensions=32)
    repo.bulk_load(synthetic_batches(20_000 if chaos.full else 8_000, 32, seed=81, batch_size=10_000))
    for path, data in synthetic_artifacts(81).items():
        repo.artifacts.write(path, data)
    repo.close()
    reference = api.export_snapshot(uri, root / "reference")
    bundle = Path(reference["path"])
    archive = pack_bundle(bundle)
    size = sum(p.stat().st_size for p in bundle.rglob("*") if p.is_file())
    rows, order, bounds = bundle_rows(bundle)
    yield {"root": root, "uri": uri, "reference": reference, "bundle": bundle, "archive": archive, "size": size,
           "rows": rows, "order": order, "bounds": bounds, "seq": api.store_stats(uri)["sequence"]}
    shutil.rmtree(root, ignore_errors=True)


def run_on(disk: SmallDisk, argv: list[str], env: dict | None = None) -> Run:
    """Run ``procos argv`` to its end in a child (under the file size limit when that is the method)."""
    done = subprocess.run([sys.executable, str(CHILD), json.dumps(argv)], capture_output=True, text=True,
                          env=env or child_env(), cwd=ROOT, timeout=600, preexec_fn=disk.preexec())
    return Run(False, done.returncode, done.stdout.removeprefix("go\n"), done.stderr, 0.0, 0)


def clean_failure(t, run, what: str) -> bool:
    """True when the command succeeded; a failure must be a clean full-disk error."""
    if run.returncode == 0:
        t.note(f"{what}_fit")
        return True
    lines = run.stderr.splitlines()
    t.ok(run.returncode == 1, f"{what} on a full disk exited {run.returncode}")
    t.ok(len(lines) == 2 and lines[0].startswith("Error: ") and lines[1].startswith("Try: "),
         f"{what} on a full disk did not print one Error and one Try line: {run.stderr[-500:]!r}")
    t.ok(any(w in run.stderr for w in FULL_WORDS), f"{what} failed, but not for a full disk: {run.stderr[-300:]}")
    t.ok("unexpected" not in run.stderr, f"{what} on a full disk gave an untyped error: {run.stderr[-300:]}")
    t.note(f"{what}_refused")
    return False


def source_untouched(t, world: dict) -> None:
    stats = api.store_stats(world["uri"])
    t.ok((stats["count"], stats["sequence"], stats["paused"]) == (len(world["rows"]), world["seq"], False),
         f"the source changed: {stats}")


CASES = ["export", "export-freeze", "pack", "import", "import-archive", "pull"]


@pytest.mark.parametrize("case", CASES)
def test_full_disk_gives_a_clean_error_and_leaves_nothing_half_done(chaos, world, case, request):
    op = f"disk-{case}"
    budget = {"export": 2.3, "export-freeze": 2.3, "pack": 2.6, "import": 5.0, "import-archive": 2.6,
              "pull": 2.6}[case]
    if case == "pull":  # the bundle and its archive on a moto S3 server, pushed once
        world = {**world, "s3": pushed_remote(request.getfixturevalue("s3"), world)}
    disk = SmallDisk(world["root"], int(world["size"] * budget) + (1 << 20))
    chaos.ledger.meta["full_disk_method"] = disk.method
    try:
        for n in chaos.trials(op, full=20, sample=1):
            with trial(chaos, op, n) as t:
                disk.clear()
                t.note(f"method_{disk.method}")
                run_case(t, world, disk, case)
    finally:
        disk.close()
    assert_no_violations(chaos, op)


def pushed_remote(s3, world: dict) -> dict:
    """Push the reference bundle and its archive to ``s3``; the remote URLs and what the server holds."""
    url = s3.url("chaos")
    api.push_snapshot(world["bundle"], url)
    api.push_snapshot(world["archive"], url)
    return {"env": s3, "urls": [f"{url}/{world['bundle'].name}", f"{url}/{world['archive'].name}"],
            "objects": remote_objects(s3)}


def remote_objects(s3) -> dict[str, tuple[int, str]]:
    """Key -> (size, ETag) of every object in the bucket."""
    found = {}
    for page in s3.client.get_paginator("list_objects_v2").paginate(Bucket=s3.bucket):
        found.update({o["Key"]: (o["Size"], o["ETag"]) for o in page.get("Contents", [])})
    return found


def run_case(t, world: dict, disk: SmallDisk, case: str) -> None:
    ref = world["reference"]
    if case == "pull":
        pull_case(t, world, disk)
    elif case.startswith("export"):
        out = disk.path / "snaps"
        disk.leave_free(int(t.rng.uniform(0, 2.0) * world["size"]))
        run = run_on(disk, ["snapshot", "export", world["uri"], "--out", str(out), "--json",
                            *(["--freeze"] if case == "export-freeze" else [])])
        clean_failure(t, run, "export")
        check_snapshots_folder(out, t, content_hash=ref["content_hash"], records=ref["record_count"])
        t.ok(leftovers(out) == [], "the failed export left a staging folder")  # its own process removed it
        source_untouched(t, world)
    elif case == "pack":
        bundle = disk.path / world["bundle"].name
        shutil.copytree(world["bundle"], bundle)
        disk.leave_free(int(t.rng.uniform(0, 1.5) * world["archive"].stat().st_size))
        run = run_on(disk, ["snapshot", "pack", str(bundle), "--json"])
        archive = layout.archive_path(bundle)
        if clean_failure(t, run, "pack"):
            t.ok(archive.read_bytes() == world["archive"].read_bytes(), "the archive differs from the reference")
        else:
            t.ok(not archive.exists(), "a failed pack left an archive")
        t.ok(leftovers(disk.path) == [], f"the failed pack left {leftovers(disk.path)}")
        t.ok(verify_bundle(bundle).ok, "packing on a full disk damaged the bundle")
    elif case == "import":
        target = disk.path / "target"
        disk.leave_free(int(t.rng.uniform(0, 4.5) * world["size"]))
        run = run_on(disk, ["snapshot", "import", str(world["bundle"]), f"faiss:{target}", "--json"])
        fit = clean_failure(t, run, "import")
        disk.leave_free(1 << 30)  # room again, to read the target back
        if (target / "store.sqlite").exists():
            answers_queries(f"faiss:{target}", t)
            rows = store_rows(f"faiss:{target}")
            prefixes = [dict((rid, world["rows"][rid]) for rid in world["order"][:upto]) for upto in world["bounds"]]
            t.ok(rows in prefixes, f"the target holds something other than whole batches ({len(rows)} rows)")
            t.ok(not fit or rows == world["rows"], "a successful import left the target incomplete")
        else:
            t.ok(not fit, "a successful import left no store")
        t.ok(verify_bundle(world["bundle"]).ok, "the source bundle changed")
    elif case == "import-archive":
        tmp = disk.path / "tmp"
        tmp.mkdir()
        target = world["root"] / f"target-{uuid.uuid4().hex[:6]}"
        disk.leave_free(int(t.rng.uniform(0, 1.5) * world["size"]))
        run = run_on(disk, ["snapshot", "import", str(world["archive"]), f"faiss:{target}", "--json"],
                     env=child_env({"TMPDIR": str(tmp)}))
        if clean_failure(t, run, "unpack"):
            t.ok(store_rows(f"faiss:{target}") == world["rows"], "the import from the archive is incomplete")
        elif world["archive"].name in run.stderr or "unpack" in run.stderr:
            t.ok(not target.exists(), "an import whose archive could not be unpacked created the target")
        else:  # RLIMIT_FSIZE also limits the target's files: the unpack fit, the store did not
            t.note("unpack_fit_store_refused")
            rows = store_rows(f"faiss:{target}") if (target / "store.sqlite").exists() else {}
            t.ok(rows in [dict((r, world["rows"][r]) for r in world["order"][:upto]) for upto in world["bounds"]],
                 "the target holds something other than whole batches")
        t.ok(list(tmp.iterdir()) == [], f"the failed unpack left {list(tmp.iterdir())}")
        shutil.rmtree(target, ignore_errors=True)


def pull_case(t, world: dict, disk: SmallDisk) -> None:
    """``snapshot pull`` into the small filesystem, then again with room, then into a roomy folder."""
    remote = world["s3"]
    url = t.rng.choice(remote["urls"])
    name = url.rsplit("/", 1)[1]
    t.note("form_archive" if layout.is_archive(Path(name)) else "form_folder")
    out = disk.path / "pulled"
    disk.leave_free(int(t.rng.uniform(0, 2.2) * world["size"]))
    run = run_on(disk, ["snapshot", "pull", url, str(out), "--json"])
    fit = clean_failure(t, run, "pull")
    allowed = {name} if fit else set()
    entries = {p.name for p in out.iterdir()} if out.is_dir() else set()
    partial = pull_folder(out, name).name
    t.ok(entries <= allowed | {partial}, f"the pull left {sorted(entries - allowed - {partial})} in the folder")
    if not fit and partial in entries:
        t.note("partial_download_kept")
    t.ok(remote_objects(remote["env"]) == remote["objects"], "the pull changed the remote objects")
    if not fit:  # what the Try line says: the same command again, with room now, finishes the pull
        disk.leave_free(1 << 30)
        again = run_on(disk, ["snapshot", "pull", url, str(out), "--json"])
        if t.ok(again.returncode == 0, f"the pull run again with room failed: {again.stderr[-300:]}"):
            skipped = json.loads(again.stdout)["bytes_skipped"]
            t.note("resumed_with_parts_kept" if skipped else "resumed_from_scratch")
    if (out / name).exists() or fit:
        pulled_verifies(t, out / name, world)
        t.ok(sorted(p.name for p in out.iterdir()) == [name], f"after the pull the folder holds {list(out.iterdir())}")
    roomy = world["root"] / f"roomy-{uuid.uuid4().hex[:6]}"
    try:
        pulled_verifies(t, Path(api.pull_snapshot(url, roomy)["path"]), world)
    finally:
        shutil.rmtree(roomy, ignore_errors=True)


def pulled_verifies(t, path: Path, world: dict) -> None:
    report = verify_bundle(path)
    if t.ok(report.ok, f"the pulled {path.name} fails verify: {report.summary()[:300]}"):
        t.ok(report.manifest.get("content_hash") == world["reference"]["content_hash"],
             f"the pulled {path.name} holds other content")
