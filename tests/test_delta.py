"""Delta bundles and chain import against real FAISS and PostgreSQL stores and real files.

Acceptance: a full bundle plus three deltas (upserts, deletes, artifact changes) imported into a
fresh store exports to the same content_hash as a full export of the source at the last delta; a
broken chain is refused with nothing written; a 1% change of a store gives a delta under 3% of
the full bundle, built without a full scan.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
from conftest import STORE_CASES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import build_records

from engine import api, snapshot
from engine.errors import BundleInvalid, LineageError
from engine.records import EmbeddingRecord, RecordBatch
from engine.repository import open_repository
from engine.snapshot import checksums, layout, manifest
from engine.synthetic import synthetic_artifacts, synthetic_batches

DIMS = 16
TWO_BACKENDS = [STORE_CASES[0], STORE_CASES[2]]  # faiss-flat, pgvector-hnsw
ARTIFACTS = dict(list(synthetic_artifacts(0).items())[:4])


def bundle_bytes(path: str, *, skip=(layout.FAISS_INDEX,)) -> int:
    files, _ = layout.relative_files(Path(path))
    return sum(layout.member(Path(path), f).stat().st_size for f in files if f not in skip)


def mutate(repo, step: int) -> None:
    """Three rounds of changes: new and updated records, deletes, artifact adds/changes/removals."""
    if step == 1:
        repo.upsert(build_records(12, DIMS, seed=11, prefix="n", version=1))  # new ids
        repo.upsert(build_records(5, DIMS, seed=12, version=2))  # r00000..r00004 updated
    elif step == 2:
        repo.delete(["r00010", "r00011", "r00200", "n00003"])
        path = sorted(ARTIFACTS)[0]
        repo.artifacts.write(path, ARTIFACTS[path] + b"\n<!-- changed -->\n")
        repo.artifacts.write("prompts/extra_v1.yaml", b"template: hello\n")
    else:
        repo.artifacts.delete(sorted(ARTIFACTS)[1])
        repo.upsert([build_records(11, DIMS, seed=13, version=3)[10]])  # r00010 comes back
        repo.upsert(build_records(3, DIMS, seed=14, prefix="n", version=5))  # n00000..n00002 again
        repo.delete(["r00299"])


@pytest.fixture
def source(new_store_uri):
    uri = new_store_uri()
    repo = open_repository(uri, dimensions=DIMS, metric="cosine")
    repo.upsert(build_records(300, DIMS))
    for path, data in ARTIFACTS.items():
        repo.artifacts.write(path, data)
    yield uri, repo
    repo.close()


@pytest.mark.parametrize("store_case", TWO_BACKENDS, indirect=True, ids=lambda c: c.name)
@pytest.mark.parametrize("mode", ["replace", "append"])
def test_full_plus_three_deltas_reconstructs_the_full_export(source, new_store_uri, tmp_path, mode):
    uri, repo = source
    out = tmp_path / "snaps"
    chain = [snapshot.export_snapshot(repo, out)]
    for step in (1, 2, 3):
        mutate(repo, step)
        chain.append(snapshot.export_delta(repo, chain[-1].path, out))
    reference = snapshot.export_snapshot(repo, tmp_path / "reference")
    for delta, parent in zip(chain[1:], chain, strict=False):
        doc = snapshot.manifest_of(delta.path)
        assert doc["kind"] == "delta" and doc["faiss_index"] is None
        assert doc["parent"] == {"snapshot_id": parent.snapshot_id, "content_hash": parent.content_hash}
        assert snapshot.verify_bundle(delta.path).ok
    assert [d.deletes for d in chain[1:]] == [0, 4, 1]
    assert snapshot.manifest_of(chain[3].path)["removed_artifacts"] == [sorted(ARTIFACTS)[1]]

    target_uri = new_store_uri()
    result = api.import_chain([c.path for c in chain], target_uri, mode=mode)
    assert result["chain"] == [c.snapshot_id for c in chain]
    rebuilt = api.export_snapshot(target_uri, tmp_path / "rebuilt")
    assert rebuilt["content_hash"] == reference.content_hash
    assert rebuilt["record_count"] == reference.record_count == 300 + 12 - 4 + 1 - 1


@pytest.mark.parametrize("store_case", TWO_BACKENDS, indirect=True, ids=lambda c: c.name)
def test_broken_chain_is_refused_with_nothing_written(source, new_store_uri, tmp_path):
    _, repo = source
    out = tmp_path / "snaps"
    full = snapshot.export_snapshot(repo, out)
    mutate(repo, 1)
    d1 = snapshot.export_delta(repo, full.path, out)
    mutate(repo, 2)
    d2 = snapshot.export_delta(repo, d1.path, out)
    fork = snapshot.export_delta(repo, full.path, out)  # a second child of the full bundle
    target_uri = new_store_uri()
    target = open_repository(target_uri, dimensions=DIMS, metric="cosine")
    target.upsert(build_records(3, DIMS, seed=99, prefix="keep"))
    target.artifacts.write("prompts/mine_v1.yaml", b"mine\n")
    before = api.export_snapshot(target_uri, tmp_path / "before")["content_hash"]
    cases = {
        "gap": [full.path, d2.path],
        "wrong order": [full.path, d2.path, d1.path],
        "fork": [full.path, d1.path, fork.path],
        "no full first": [d1.path, d2.path],
        "full after first": [full.path, d1.path, full.path],
    }
    for name, paths in cases.items():
        with pytest.raises(LineageError):
            api.import_chain(paths, target_uri, mode="replace")
        assert api.export_snapshot(target_uri, tmp_path / "after")["content_hash"] == before, name
    assert target.count() == 3
    target.close()


def test_a_tampered_delta_refuses_the_whole_chain(source, new_store_uri, tmp_path):
    _, repo = source
    full = snapshot.export_snapshot(repo, tmp_path / "snaps")
    mutate(repo, 1)
    d1 = snapshot.export_delta(repo, full.path, tmp_path / "snaps")
    changes = Path(d1.path) / layout.CHANGES
    changes.write_bytes(changes.read_bytes().replace(b'"version":2', b'"version":9', 1))
    target_uri = new_store_uri()
    with pytest.raises(BundleInvalid) as info:
        api.import_chain([full.path, d1.path], target_uri, mode="replace")
    assert d1.path in info.value.message
    assert any(f["path"] == layout.CHANGES for f in info.value.findings)
    target = open_repository(target_uri)
    assert target.count() == 0 and target.artifacts.list() == []
    target.close()


def reseal(root: Path) -> None:
    """Recompute checksums.sha256 and content_hash after editing files (to reach the deep checks)."""
    doc = json.loads((root / layout.MANIFEST).read_text())
    files, _ = layout.relative_files(root)
    entries = {f: checksums.sha256_file(root / f)[0] for f in files if f not in (layout.CHECKSUMS, layout.MANIFEST)}
    doc["content_hash"] = checksums.content_hash(entries)
    (root / layout.MANIFEST).write_bytes(manifest.dumps(doc))
    entries[layout.MANIFEST] = checksums.sha256_file(root / layout.MANIFEST)[0]
    (root / layout.CHECKSUMS).write_text(checksums.format_lines(entries))


def test_verify_checks_changes_against_rows_counts_and_artifact_state(source, tmp_path):
    _, repo = source
    full = snapshot.export_snapshot(repo, tmp_path / "snaps")
    mutate(repo, 1)
    mutate(repo, 2)
    delta = snapshot.export_delta(repo, full.path, tmp_path / "snaps")
    root = Path(delta.path)
    lines = (root / layout.CHANGES).read_text().splitlines(keepends=True)
    upsert = next(i for i, line in enumerate(lines) if '"upsert"' in line)
    lines[upsert] = lines[upsert].replace('"version":1', '"version":7')
    lines = [line for line in lines if '"delete"' not in line or "r00200" not in line]
    (root / layout.CHANGES).write_text("".join(lines))
    doc = json.loads((root / layout.MANIFEST).read_text())
    changed = sorted(p for p in doc["artifacts_state"] if (root / p).exists())[0]
    doc["artifacts_state"][changed] = "0" * 64
    doc["removed_artifacts"] = [changed]
    (root / layout.MANIFEST).write_bytes(manifest.dumps(doc))
    reseal(root)
    report = snapshot.verify_bundle(root)
    problems = " | ".join(f"{f.path}: {f.problem}" for f in report.errors)
    assert "do not match the rows of the embeddings" in problems
    assert "changes.deletes=4" in problems
    assert f"artifacts_state gives {changed}" in problems
    assert f"removed_artifacts lists {changed}, which the delta holds" in problems


def test_an_empty_delta_is_valid_and_applies(source, new_store_uri, tmp_path):
    _, repo = source
    full = snapshot.export_snapshot(repo, tmp_path / "snaps")
    delta = snapshot.export_delta(repo, full.path, tmp_path / "snaps")
    assert (delta.record_count, delta.upserts, delta.deletes) == (0, 0, 0)
    assert (Path(delta.path) / layout.CHANGES).read_bytes() == b""
    assert snapshot.verify_bundle(delta.path).ok
    target_uri = new_store_uri()
    api.import_chain([full.path, delta.path], target_uri, mode="replace")
    assert api.export_snapshot(target_uri, tmp_path / "t")["content_hash"] == full.content_hash


def test_a_base_without_sequence_is_refused(source, tmp_path):
    _, repo = source
    full = snapshot.export_snapshot(repo, tmp_path / "snaps")
    root = Path(full.path)
    doc = json.loads((root / layout.MANIFEST).read_text())
    del doc["sequence"]
    (root / layout.MANIFEST).write_bytes(manifest.dumps(doc))
    with pytest.raises(LineageError, match="sequence"):
        snapshot.export_delta(repo, full.path, tmp_path / "snaps")
    assert [p.name for p in (tmp_path / "snaps").iterdir() if p.name.startswith(".")] == []


@pytest.mark.parametrize("store_case", [STORE_CASES[0]], indirect=True, ids=lambda c: c.name)
@pytest.mark.parametrize("n", [20_000, pytest.param(100_000, marks=pytest.mark.slow)])
def test_delta_of_one_percent_change_is_under_three_percent_and_scans_nothing(new_store_uri, tmp_path,
                                                                             monkeypatch, n):
    dims = 32
    repo = open_repository(new_store_uri(), dimensions=dims, metric="cosine")
    repo.bulk_load(synthetic_batches(n, dims, seed=3, batch_size=5_000))
    full = snapshot.export_snapshot(repo, tmp_path / "snaps")
    batch = next(synthetic_batches(n, dims, seed=4, batch_size=n))
    rng = np.random.default_rng(0)
    picked = rng.choice(n, size=n // 100, replace=False)
    updates, deletes = picked[: len(picked) // 2], picked[len(picked) // 2:]
    changed = batch.take(np.sort(updates))
    repo.write_batch(RecordBatch(changed.ids, changed.vectors, changed.metadata, changed.versions + 1,
                                 changed.source_hashes, changed.created_us, changed.updated_us))
    repo.delete([batch.ids[i] for i in deletes])

    def no_full_scan(*_a, **_k):
        raise AssertionError("a delta export must not read the whole store")

    monkeypatch.setattr(repo, "iter_batches", no_full_scan)
    delta = snapshot.export_delta(repo, full.path, tmp_path / "snaps")
    monkeypatch.undo()
    assert (delta.upserts, delta.deletes) == (len(updates), len(deletes))
    ratio = bundle_bytes(delta.path) / bundle_bytes(full.path)
    assert ratio < 0.03, f"delta is {ratio:.2%} of the full bundle"
    repo.close()


def test_cli_delta_chain_import_and_catalog(tmp_path):
    def procos(*args: str) -> subprocess.CompletedProcess:
        env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                              env=env, timeout=120)

    src = f"faiss:{tmp_path / 'src'}"
    repo = open_repository(src, dimensions=DIMS, metric="cosine", index="flat")
    repo.upsert(build_records(50, DIMS))
    repo.close()
    out = tmp_path / "snaps"
    full = json.loads(procos("snapshot", "export", src, "--out", str(out), "--json").stdout)
    repo = open_repository(src)
    repo.upsert(build_records(3, DIMS, seed=2, version=4))
    repo.delete(["r00040"])
    repo.close()
    proc = procos("snapshot", "delta", src, "--base", full["path"], "--out", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    delta = json.loads(proc.stdout)
    assert {"path", "snapshot_id", "content_hash", "record_count", "parent"} <= delta.keys()
    assert delta["parent"] == {"snapshot_id": full["snapshot_id"], "content_hash": full["content_hash"]}
    proc = procos("snapshot", "import", full["path"], delta["path"], f"faiss:{tmp_path / 'tgt'}", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["snapshot_id"] == delta["snapshot_id"]
    proc = procos("snapshot", "import", delta["path"], full["path"], f"faiss:{tmp_path / 'tgt2'}")
    assert proc.returncode != 0 and "delta bundle" in proc.stderr
    assert not (tmp_path / "tgt2").exists() or open_repository(f"faiss:{tmp_path / 'tgt2'}").count() == 0
    proc = procos("snapshot", "catalog", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert [b["chain"] for b in report["bundles"]] == [[full["snapshot_id"]],
                                                       [full["snapshot_id"], delta["snapshot_id"]]]


# --- property: any sequence of changes, split into deltas anywhere, reconstructs the same content ------

OPS = st.lists(st.tuples(st.sampled_from(["upsert", "delete", "artifact", "unartifact", "cut"]),
                         st.integers(0, 29), st.integers(1, 4)), max_size=25)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(ops=OPS)
def test_any_chain_reconstructs_the_full_export(ops, tmp_path):
    with tempfile.TemporaryDirectory(dir=tmp_path) as tmp:
        base = Path(tmp)
        repo = open_repository(f"faiss:{base / 'src'}", dimensions=4, metric="l2", index="flat")
        repo.upsert(build_records(10, 4))
        chain = [snapshot.export_snapshot(repo, base / "snaps").path]
        for op, i, version in ops:
            rid = f"r{i:05d}"
            if op == "upsert":
                vec = np.full(4, i + version, np.float32)
                current = repo.fetch([rid])
                repo.upsert([EmbeddingRecord(rid, vec, {"v": version}, (current[0].version + 1) if current else 1)])
            elif op == "delete":
                repo.delete([rid])
            elif op == "artifact":
                repo.artifacts.write(f"prompts/p{i % 5}_v1.yaml", f"v: {version}\n".encode())
            elif op == "unartifact":
                repo.artifacts.delete(f"prompts/p{i % 5}_v1.yaml")
            else:
                chain.append(snapshot.export_delta(repo, chain[-1], base / "snaps").path)
        chain.append(snapshot.export_delta(repo, chain[-1], base / "snaps").path)
        expected = snapshot.export_snapshot(repo, base / "ref").content_hash
        repo.close()
        result = api.import_chain(chain, f"faiss:{base / 'tgt'}", mode="replace")
        assert api.export_snapshot(f"faiss:{base / 'tgt'}", base / "out")["content_hash"] == expected
        assert len(result["chain"]) == len(chain)


def test_archives_work_as_base_and_in_a_chain_and_dry_run_writes_nothing(source, tmp_path):
    _, repo = source
    out = tmp_path / "snaps"
    full = snapshot.export_snapshot(repo, out, pack=True)
    mutate(repo, 1)
    d1 = snapshot.export_delta(repo, full.archive, out, pack=True)  # base given as .tar.zst
    assert d1.parent["snapshot_id"] == full.snapshot_id
    reference = snapshot.export_snapshot(repo, tmp_path / "reference")
    target = tmp_path / "tgt"
    plan = api.import_chain([full.archive, d1.archive], f"faiss:{target}", mode="replace", dry_run=True)
    assert [b["kind"] for b in plan["bundles"]] == ["full", "delta"] and not target.exists()
    api.import_snapshot([full.archive, d1.archive], f"faiss:{target}", mode="replace")
    assert api.export_snapshot(f"faiss:{target}", tmp_path / "t")["content_hash"] == reference.content_hash


def test_a_delta_alone_is_not_imported_as_if_it_were_full(source, new_store_uri, tmp_path):
    _, repo = source
    full = snapshot.export_snapshot(repo, tmp_path / "snaps")
    mutate(repo, 1)
    delta = snapshot.export_delta(repo, full.path, tmp_path / "snaps")
    target_uri = new_store_uri()
    with pytest.raises(LineageError, match="delta bundle"):
        api.import_snapshot(delta.path, target_uri, mode="replace")
    target = open_repository(target_uri)
    assert target.count() == 0
    target.close()
    assert "delta of:" in snapshot.inspect_bundle(delta.path)
