"""Corruption of every file kind of a bundle (full and delta) and of a packed archive, at random positions.

Damage: a flipped byte, truncation, appended bytes, a deleted file, a stray file. After each:
``verify`` fails and a finding names the damaged file (for an archive: the archive); ``procos
snapshot import`` exits non-zero with exactly an ``Error:`` and a ``Try:`` line naming the bundle
and the file, writes nothing into an existing target and creates no new one, and leaves no
temporary folder behind.

Damage targets are a registry (:data:`TARGETS`): one function that makes a pristine copy of a kind
of artifact. ``encrypted`` is the packed archive encrypted with age (``snapshot encrypt``): the
damaged ``.age`` is verified and imported with its identity file, so the decryption is attempted
and must fail (or the archive inside must), typed and naming the file. It is its own operation
(``corruption-encrypted``), so the trials of ``corruption`` stay those of earlier campaigns.
"""

from __future__ import annotations

import os
import random
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
from engine.crypto import AgeKeys, encode_identity, recipient_of
from engine.crypto.age_stream import CHUNK, NONCE, TAG
from engine.errors import ProcosError
from engine.repository import open_repository
from engine.snapshot import layout, pack_bundle, verify_bundle
from engine.synthetic import record_id, synthetic_artifacts, synthetic_batches

FOLDER_MUTATIONS = ("flip", "truncate", "append", "delete", "stray")
FILE_MUTATIONS = ("flip", "truncate", "append")
# cut_at_chunk (age files): truncation exactly after a whole 64 KiB chunk, where only the final-chunk flag tells


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
    encrypted, identity = encrypted_archive(root / "sealed")
    return {"root": root, "bundle": full, "delta": delta, "archive": archive, "target": root / "target",
            "encrypted": encrypted, "identity": identity}


def encrypted_archive(root: Path) -> tuple[Path, Path]:
    """A packed bundle of about 0.5 MB (several 64 KiB age chunks) encrypted with age, and its identity file."""
    uri = f"faiss:{root / 'source'}?index=flat"
    repo = open_repository(uri, dimensions=32)
    repo.bulk_load(synthetic_batches(4000, 32, seed=64))
    repo.close()
    archive = pack_bundle(Path(api.export_snapshot(uri, root / "snaps")["path"]))
    secret = random.Random(64).randbytes(32)  # a fixed identity: the encrypted bytes vary, the key does not
    identity = root / "key.txt"
    identity.write_text(f"# a throwaway key of the corruption campaign\n{encode_identity(secret)}\n")
    encrypted = Path(api.encrypt_snapshot(archive, [recipient_of(secret)])["path"])
    assert len(age_chunk_ends(encrypted.read_bytes())) > 4
    assert verify_bundle(encrypted, keys=AgeKeys.from_files([identity])).ok, "the pristine .age does not verify"
    return encrypted, identity


def age_chunk_ends(data: bytes) -> list[int]:
    """Offsets in an age file just past each full payload chunk (a cut there leaves whole chunks only)."""
    start = data.index(b"\n", data.index(b"\n--- ") + 1) + 1 + NONCE
    return list(range(start + CHUNK + TAG, len(data), CHUNK + TAG))


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
    "encrypted": (lambda w, d: copy_file(w["encrypted"], d), (*FILE_MUTATIONS, "cut_at_chunk")),
}
FILE_TARGETS = ("archive", "encrypted")  # one file, damaged as a whole


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
    elif mutation == "cut_at_chunk":
        data = data[:rng.choice(age_chunk_ends(bytes(data)))]
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


def kinds_of(pristine: dict, targets: tuple[str, ...]) -> list[tuple[str, str]]:
    """Every (target, file kind) pair of ``targets``, the unit the trials cycle through."""
    pairs = []
    for target in targets:
        if target in FILE_TARGETS:
            pairs.append((target, target))
            continue
        files, _ = layout.relative_files(pristine[target])
        pairs.extend((target, kind) for kind in sorted({file_kind(rel) for rel in files}))
    return pairs


def test_corruption_is_found_named_and_never_imported(chaos, pristine):
    op = "corruption"
    pairs = kinds_of(pristine, ("bundle", "delta", "archive"))
    runner = CliRunner()
    for n in chaos.trials(op, full=1000, sample=len(pairs)):
        with trial(chaos, op, n) as t:
            damage_trial(t, pristine, runner, *pairs[n % len(pairs)])
    assert_no_violations(chaos, op)


def test_corruption_of_an_encrypted_archive_is_refused_with_its_key(chaos, pristine):
    op = "corruption-encrypted"
    runner = CliRunner()
    mutations = TARGETS["encrypted"][1]
    for n in chaos.trials(op, full=200, sample=len(mutations)):
        with trial(chaos, op, n) as t:
            damage_trial(t, pristine, runner, "encrypted", "encrypted", mutation=mutations[n % len(mutations)])
    assert_no_violations(chaos, op)


def damage_trial(t, pristine: dict, runner: CliRunner, target_kind: str, kind: str, mutation: str | None = None):
    """Damage a pristine copy of ``target_kind`` (a file of ``kind``), then verify and import it; check the invariants."""
    make, mutations = TARGETS[target_kind]
    work = pristine["root"] / f"trial-{t.op}-{t.number}"
    copy = make(pristine, work / "in")
    mutation = mutation or t.rng.choice(mutations)
    if target_kind in FILE_TARGETS:
        damaged = damage(copy, mutation, t.rng)
        rel = copy.name
    else:
        files, _ = layout.relative_files(copy)
        rel = t.rng.choice([f for f in files if file_kind(f) == kind])
        damaged = damage(copy / rel, mutation, t.rng)
        rel = damaged.relative_to(copy).as_posix()
    t.note(f"{target_kind}:{kind}:{mutation}")
    encrypted = target_kind == "encrypted"
    keys = AgeKeys.from_files([pristine["identity"]]) if encrypted else None
    key_args = ["--identity", str(pristine["identity"])] if encrypted else []
    with private_tmp(work / "tmp") as tmp:
        try:
            report = verify_bundle(copy, keys=keys)
        except ProcosError as exc:  # a damaged age header or payload: a typed error, not a report
            t.note(f"verify_raised_{type(exc).__name__}")
            t.ok(rel in exc.message, f"{type(exc).__name__} does not name {rel}: {exc.message[:300]}")
            t.ok("no key was given" not in exc.message, f"the decryption was not attempted: {exc.message[:300]}")
            t.ok(exc.hint, f"{type(exc).__name__} has no hint")
        else:
            t.ok(not report.ok, f"verify passed after {mutation} of {rel}")
            named = [f for f in report.errors if rel in f.path or rel in f.problem]
            t.ok(named, f"no finding names {rel} after {mutation}: {[f.to_json() for f in report.errors][:3]}")
        t.ok(list(tmp.iterdir()) == [], f"verify left {list(tmp.iterdir())} in the temporary folder")
    existing = t.rng.random() < 0.5
    if existing:
        dest = work / "target"
        shutil.copytree(pristine["target"], dest)
        before = (store_rows(f"faiss:{dest}"), api.store_stats(f"faiss:{dest}")["sequence"])
    else:
        dest = work / "new-target"
    with private_tmp(work / "tmp") as tmp:
        result = runner.invoke(cli, ["snapshot", "import", str(copy), f"faiss:{dest}", "--json", *key_args])
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
