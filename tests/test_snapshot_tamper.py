"""Tampered bundles: every kind of damage is found by verify, with the path it concerns."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapshot_helpers import synthetic_bundle

from engine.snapshot import verify_bundle
from engine.snapshot.checksums import content_hash, format_lines, parse_lines, sha256_file
from engine.snapshot.manifest import dumps

FILE_KINDS = ["embeddings/part-00000.parquet", "index.faiss", "manifest.json", "bpmn/invoice_approval_v1.bpmn",
              "prompts/extract_steps_v1.yaml", "patterns/pattern_catalog_v1.yaml",
              "examples/examples_v1.jsonl", "domains/domain_profiles.jsonl", "logs/generation_events.jsonl"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pristine")
    return Path(synthetic_bundle(tmp / "snaps", tmp, count=400, dims=8, backend="faiss").path)


@pytest.fixture
def bundle(pristine: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / pristine.name
    shutil.copytree(pristine, copy)
    return copy


def paths_of(report) -> set[str]:
    return {e["path"] for e in report.to_json()["errors"]}


def reseal(bundle: Path, *, manifest_edit=None) -> None:
    """Rewrite checksums.sha256 (and the manifest's content_hash) to match the files, as a careful forger would."""
    entries, _ = parse_lines((bundle / "checksums.sha256").read_text())
    for rel in entries:
        entries[rel] = sha256_file(bundle / rel)[0]
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["content_hash"] = content_hash(entries)
    if manifest_edit:
        manifest_edit(doc)
    data = dumps(doc)
    (bundle / "manifest.json").write_bytes(data)
    entries["manifest.json"] = hashlib.sha256(data).hexdigest()
    (bundle / "checksums.sha256").write_text(format_lines(entries))


def test_pristine_bundle_verifies(pristine: Path):
    report = verify_bundle(pristine)
    assert report.ok, report.summary()
    assert report.to_json() == {"ok": True, "errors": [], "manifest": report.manifest,
                                "signature": {"status": "missing", "fingerprint": None}}
    assert report.manifest["record_count"] == 400


@pytest.mark.parametrize("rel", FILE_KINDS)
def test_one_flipped_byte_is_found_in_every_file_kind(bundle: Path, rel: str):
    target = bundle / rel
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    report = verify_bundle(bundle)
    assert not report.ok
    assert rel in paths_of(report)
    assert any("sha256 mismatch" in e["problem"] for e in report.to_json()["errors"] if e["path"] == rel)


def test_flipped_byte_in_checksums_file_is_found(bundle: Path):
    target = bundle / "checksums.sha256"
    text = target.read_text()
    target.write_text(("1" if text[0] != "1" else "2") + text[1:])
    report = verify_bundle(bundle)
    assert not report.ok and paths_of(report) == {text.splitlines()[0].split("  ", 1)[1]}


def test_deleted_file_is_reported_missing(bundle: Path):
    (bundle / "prompts/extract_steps_v1.yaml").unlink()
    report = verify_bundle(bundle)
    problems = {e["path"]: e["problem"] for e in report.to_json()["errors"]}
    assert "missing" in problems["prompts/extract_steps_v1.yaml"]
    assert "prompt_count" in problems["manifest.json"]


def test_added_file_is_reported_unlisted(bundle: Path):
    (bundle / "bpmn" / "extra_v1.bpmn").write_text("<x/>")
    (bundle / "notes.txt").write_text("hello")
    report = verify_bundle(bundle)
    assert {"bpmn/extra_v1.bpmn", "notes.txt"} <= paths_of(report)


def test_symlink_in_bundle_is_refused(bundle: Path):
    (bundle / "domains" / "link.jsonl").symlink_to("/etc/passwd")
    assert "domains/link.jsonl" in paths_of(verify_bundle(bundle))


def test_edited_manifest_is_found_by_its_checksum_and_its_counts(bundle: Path):
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["record_count"] = 401
    (bundle / "manifest.json").write_text(json.dumps(doc))
    report = verify_bundle(bundle)
    problems = [e["problem"] for e in report.to_json()["errors"] if e["path"] == "manifest.json"]
    assert any("sha256 mismatch" in p for p in problems)
    assert any("record_count=401" in e["problem"] for e in report.to_json()["errors"])


def test_manifest_counts_disagreeing_with_data_are_found_even_with_rewritten_checksums(bundle: Path):
    def lie(doc):
        doc.update(record_count=399, dimensions=9, bpmn_count=5, log_count=0)

    reseal(bundle, manifest_edit=lie)
    report = verify_bundle(bundle)
    errors = report.to_json()["errors"]
    assert not any("sha256 mismatch" in e["problem"] for e in errors)
    text = " | ".join(f"{e['path']}: {e['problem']}" for e in errors)
    assert "record_count=399" in text and "dimensions=9" in text
    assert "bpmn_count is 5" in text and "log_count is 0" in text
    assert "index.faiss" in paths_of(report)  # ntotal 400 / d 8 disagree with the manifest too


def test_content_hash_is_recomputed(bundle: Path):
    reseal(bundle, manifest_edit=lambda doc: doc.update(content_hash="0" * 64))
    errors = verify_bundle(bundle).to_json()["errors"]
    assert [e["path"] for e in errors] == ["manifest.json"] and "content_hash" in errors[0]["problem"]


def test_manifest_that_breaks_the_schema_is_reported(bundle: Path):
    reseal(bundle, manifest_edit=lambda doc: (doc.pop("metric"), doc.update(vector_backend="mongo")))
    problems = [e["problem"] for e in verify_bundle(bundle).to_json()["errors"]]
    assert any("metric" in p for p in problems) and any("mongo" in p for p in problems)


def _rewrite_parquet(bundle: Path, change) -> None:
    path = bundle / "embeddings/part-00000.parquet"
    table = pq.read_table(path)
    table = change(table)
    path.unlink()
    pq.write_table(table, path, compression="zstd")
    reseal(bundle)


def test_vector_changed_with_its_hash_kept_is_found(bundle: Path):
    def change(table: pa.Table) -> pa.Table:
        vectors = table.column("vector").combine_chunks()
        flat = vectors.flatten().to_numpy().copy()
        flat[3 * 8] += 1.0  # row 3
        new = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), 8)
        return table.set_column(1, table.schema.field("vector"), new.cast(table.schema.field("vector").type))

    _rewrite_parquet(bundle, change)
    errors = verify_bundle(bundle).to_json()["errors"]
    assert [e["path"] for e in errors] == ["embeddings/part-00000.parquet"]
    assert "vector_hash" in errors[0]["problem"] and "rec-0000004" in errors[0]["problem"]


def test_rows_out_of_order_and_duplicate_ids_are_found(bundle: Path):
    def change(table: pa.Table) -> pa.Table:
        ids = table.column("id").to_pylist()
        ids[10], ids[11] = ids[11], ids[10]
        ids[20] = ids[19]
        return table.set_column(0, table.schema.field("id"), pa.array(ids, pa.string()))

    _rewrite_parquet(bundle, change)
    problems = " | ".join(e["problem"] for e in verify_bundle(bundle).to_json()["errors"])
    assert "out of ascending id order" in problems and "repeat the id" in problems


def test_every_problem_is_reported_not_just_the_first(bundle: Path):
    (bundle / "prompts/extract_steps_v1.yaml").unlink()
    (bundle / "stray.bin").write_bytes(b"x")
    with open(bundle / "examples/examples_v1.jsonl", "ab") as fh:
        fh.write(b"{}\n")
    assert {"prompts/extract_steps_v1.yaml", "stray.bin", "examples/examples_v1.jsonl",
            "manifest.json"} <= paths_of(verify_bundle(bundle))


def test_missing_manifest_means_unfinished(bundle: Path):
    (bundle / "manifest.json").unlink()
    errors = verify_bundle(bundle).to_json()["errors"]
    assert any(e["path"] == "manifest.json" and "missing" in e["problem"] for e in errors)
