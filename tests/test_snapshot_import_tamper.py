"""Every kind of tampering is refused twice: by ``procos snapshot verify`` (exit 3, the damaged path in
``--json``) and by import (append and replace) into a non-empty FAISS or pgvector target, which is
left exactly as it was: records, change sequence and artifacts."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner
from reference import with_options

from engine import api
from engine.errors import BundleError, BundleInvalid
from engine.repository import open_repository
from engine.snapshot import export_snapshot
from engine.snapshot.checksums import content_hash, format_lines, parse_lines, sha256_file
from engine.snapshot.manifest import dumps
from engine.synthetic import synthetic_artifacts, synthetic_batches

COUNT, DIMS = 60, 16
BPMN = "bpmn/invoice_approval_v1.bpmn"
PROMPT = "prompts/extract_steps_v1.yaml"
SHARD = "embeddings/part-00000.parquet"
FLIPPED = [SHARD, "index.faiss", "manifest.json", BPMN, PROMPT,
           "patterns/pattern_catalog_v1.yaml", "examples/examples_v1.jsonl", "domains/domain_profiles.jsonl",
           "logs/generation_events.jsonl"]


# --- the damage ------------------------------------------------------------------------------------

def flip_byte(rel: str) -> Callable[[Path], None]:
    def damage(bundle: Path) -> None:
        path = bundle / rel
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    return damage


def flip_checksum_digit(bundle: Path) -> None:
    """Change one hex digit of the first shard's line (the line stays well formed)."""
    path = bundle / "checksums.sha256"
    lines = path.read_text().splitlines(keepends=True)
    i = next(n for n, line in enumerate(lines) if line.endswith(f"  {SHARD}\n"))
    digit = lines[i][10]
    lines[i] = lines[i][:10] + ("0" if digit != "0" else "1") + lines[i][11:]
    path.write_text("".join(lines))


def flip_manifest_value(bundle: Path) -> None:
    """Flip one hex digit of snapshot_id: the manifest stays valid JSON, so import gets past reading it."""
    path = bundle / "manifest.json"
    text = path.read_text()
    at = text.index('"snapshot_id": "') + len('"snapshot_id": "')
    path.write_text(text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1:])


def delete(rel: str) -> Callable[[Path], None]:
    return lambda bundle: (bundle / rel).unlink()


def add_files(bundle: Path) -> None:
    (bundle / "bpmn" / "extra_v1.bpmn").write_text("<x/>")
    (bundle / "notes.txt").write_text("hello")


def edit_manifest(bundle: Path) -> None:
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["record_count"] = COUNT - 1
    (bundle / "manifest.json").write_bytes(dumps(doc))


def lying_counts_resealed(bundle: Path) -> None:
    """Manifest counts that disagree with the data, with checksums and content_hash rewritten to match."""
    entries, _ = parse_lines((bundle / "checksums.sha256").read_text())
    doc = json.loads((bundle / "manifest.json").read_text())
    doc.update(record_count=COUNT + 5, bpmn_count=2, log_count=0)
    doc["content_hash"] = content_hash(entries)
    data = dumps(doc)
    (bundle / "manifest.json").write_bytes(data)
    entries["manifest.json"] = hashlib.sha256(data).hexdigest()
    (bundle / "checksums.sha256").write_text(format_lines(entries))


# name -> (damage, paths that must appear in the findings)
CASES: dict[str, tuple[Callable[[Path], None], set[str]]] = {
    **{f"flip-{rel.split('/')[0]}": (flip_byte(rel), {rel}) for rel in FLIPPED},
    "flip-manifest-value": (flip_manifest_value, {"manifest.json"}),
    "flip-checksums.sha256": (flip_checksum_digit, {SHARD}),
    "delete-prompt": (delete(PROMPT), {PROMPT, "manifest.json"}),
    "delete-index.faiss": (delete("index.faiss"), {"index.faiss"}),
    "add-files": (add_files, {"bpmn/extra_v1.bpmn", "notes.txt"}),
    "edit-manifest": (edit_manifest, {"manifest.json", "index.faiss"}),  # the shards add up to 60 rows, not 59
    "lying-counts-resealed": (lying_counts_resealed, {"manifest.json", "index.faiss"}),
}


# --- bundle and targets ----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("import-tamper")
    repo = open_repository(f"faiss:{tmp / 'source'}?index=flat", dimensions=DIMS)
    try:
        repo.bulk_load(synthetic_batches(COUNT, DIMS, seed=3, batch_size=25))
        for path, data in synthetic_artifacts(3).items():
            repo.artifacts.write(path, data)
        return Path(export_snapshot(repo, tmp / "snaps").path)
    finally:
        repo.close()


@pytest.fixture
def damaged(request: pytest.FixtureRequest, pristine: Path, tmp_path: Path) -> tuple[Path, set[str]]:
    damage, paths = CASES[request.param]
    bundle = tmp_path / pristine.name
    shutil.copytree(pristine, bundle)
    damage(bundle)
    return bundle, paths


def target_uri(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    if backend == "faiss":
        return f"faiss:{tmp_path / 'target'}?index=flat"
    pg = request.getfixturevalue("pg_server")
    table = f"t_{uuid.uuid4().hex[:12]}"
    return (with_options(pg.dsn, table=table, index="flat") if pg.datadir is None
            else f"postgresql+embedded:{pg.datadir}?table={table}&index=flat")


def seed_target(uri: str) -> None:
    """20 records that share ids with the bundle, a second write, and an artifact set of its own."""
    repo = open_repository(uri, dimensions=DIMS)
    try:
        repo.bulk_load(synthetic_batches(20, DIMS, seed=9, batch_size=20))
        repo.write_batch(next(synthetic_batches(25, DIMS, seed=11, batch_size=25)))
        for path, data in synthetic_artifacts(9).items():
            repo.artifacts.write(path, data)
        repo.artifacts.write("bpmn/target_only_v1.bpmn", b"<definitions/>")
    finally:
        repo.close()


def state_of(uri: str) -> dict:
    """Everything import could change: every record field, the change sequence, the pause flag, artifacts."""
    repo = open_repository(uri)
    try:
        batches = list(repo.iter_batches(16))
        return {
            "ids": [i for b in batches for i in b.ids],
            "vectors": b"".join(b.vectors.astype("<f4").tobytes() for b in batches),
            "metadata": [m for b in batches for m in b.metadata],
            "versions": [int(v) for b in batches for v in b.versions],
            "source_hashes": [h for b in batches for h in b.source_hashes],
            "timestamps": [(int(c), int(u)) for b in batches for c, u in zip(b.created_us, b.updated_us,
                                                                              strict=True)],
            "sequence": repo.sequence(), "paused": repo.is_paused(),
            "artifacts": {a.path: repo.artifacts.read(a.path) for a in repo.artifacts.list()},
        }
    finally:
        repo.close()


# --- the tests ---------------------------------------------------------------------------------------

def test_pristine_bundle_imports_into_both_targets(pristine: Path, tmp_path: Path, request):
    """The control: without damage the same bundle verifies and imports, so refusals below are the damage's."""
    assert api.verify_snapshot(pristine)["ok"]
    for backend in ("faiss", "pgvector"):
        uri = target_uri(backend, tmp_path / backend, request)
        seed_target(uri)
        out = api.import_snapshot(pristine, uri, mode="replace")
        assert out["imported"] == COUNT
        assert len(state_of(uri)["ids"]) == COUNT


@pytest.mark.parametrize("damaged", list(CASES), indirect=True)
def test_verify_cli_exits_3_and_names_the_damaged_path(damaged: tuple[Path, set[str]]):
    from engine.cli import cli

    bundle, paths = damaged
    result = CliRunner().invoke(cli, ["snapshot", "verify", str(bundle), "--json"])
    assert result.exit_code == 3, result.output
    report = json.loads(result.output)
    assert report["ok"] is False
    assert paths <= {e["path"] for e in report["errors"]}, report["errors"]


@pytest.mark.parametrize("backend", ["faiss", "pgvector"])
@pytest.mark.parametrize("damaged", list(CASES), indirect=True)
def test_import_refuses_and_leaves_the_target_unchanged(damaged: tuple[Path, set[str]], backend: str,
                                                        tmp_path: Path, request: pytest.FixtureRequest):
    bundle, paths = damaged
    uri = target_uri(backend, tmp_path, request)
    seed_target(uri)
    before = state_of(uri)
    assert len(before["ids"]) == 25 and "bpmn/target_only_v1.bpmn" in before["artifacts"]
    for mode in ("append", "replace"):
        with pytest.raises(BundleError) as info:
            api.import_snapshot(bundle, uri, mode=mode)
        if isinstance(info.value, BundleInvalid):
            assert paths & {f["path"] for f in info.value.findings}
        else:  # a manifest that is no longer JSON is refused while reading the bundle's settings
            assert any(p in info.value.message for p in paths), info.value.message
        assert state_of(uri) == before, f"{mode} import changed the target"


def test_import_of_a_damaged_archive_is_refused_too(pristine: Path, tmp_path: Path):
    """The .tar.zst path goes through the same verification (damage made before packing)."""
    bundle = tmp_path / pristine.name
    shutil.copytree(pristine, bundle)
    flip_byte(BPMN)(bundle)
    archive = api.pack_snapshot(bundle)["archive"]
    uri = f"faiss:{tmp_path / 'target'}?index=flat"
    seed_target(uri)
    before = state_of(uri)
    with pytest.raises(BundleInvalid) as info:
        api.import_snapshot(archive, uri, mode="replace")
    assert BPMN in {f["path"] for f in info.value.findings}
    assert sha256_file(Path(archive))[1] > 0 and state_of(uri) == before
