"""The snapshot catalog: one line per bundle written, and the lineage/health check over real bundles."""

from __future__ import annotations

import json
import shutil
import threading
from pathlib import Path

import pytest
from reference import build_records

from engine import api, snapshot
from engine.errors import BundleError
from engine.repository import open_repository
from engine.snapshot import catalog, layout

DIMS = 8


@pytest.fixture
def chain(tmp_path):
    """A FAISS store and, in ``tmp/snaps``, a full bundle and two deltas on it (plus a packed archive)."""
    repo = open_repository(f"faiss:{tmp_path / 'src'}", dimensions=DIMS, metric="cosine", index="flat")
    repo.upsert(build_records(40, DIMS))
    repo.artifacts.write("prompts/a_v1.yaml", b"a: 1\n")
    out = tmp_path / "snaps"
    full = snapshot.export_snapshot(repo, out)
    repo.upsert(build_records(3, DIMS, seed=1, version=2))
    d1 = snapshot.export_delta(repo, full.path, out)
    repo.delete(["r00007"])
    repo.artifacts.delete("prompts/a_v1.yaml")
    d2 = snapshot.export_delta(repo, d1.path, out, pack=True)
    yield repo, out, [full, d1, d2]
    repo.close()


def problems_of(report: dict) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for p in report["problems"]:
        out.setdefault(p["code"], set()).add(p["bundle"] or p["path"])
    return out


def test_every_bundle_written_appends_one_catalog_line(chain):
    _, out, bundles = chain
    lines = [json.loads(line) for line in layout.catalog_path(out).read_text().splitlines()]
    assert [e["snapshot_id"] for e in lines] == [b.snapshot_id for b in bundles]
    full, d1, d2 = lines
    assert set(full) == set(catalog.ENTRY_KEYS)
    assert (full["kind"], full["parent"], full["counts"]) == ("full", None, {"records": 40, "artifacts": 1})
    assert d1["parent"] == {"snapshot_id": full["snapshot_id"], "content_hash": full["content_hash"]}
    assert d2["counts"] == {"records": 0, "artifacts": 0, "upserts": 0, "deletes": 1, "removed_artifacts": 1}
    assert [e["path"] for e in lines] == [Path(b.path).name for b in bundles]
    assert d2["sequence"] > d1["sequence"] > full["sequence"]


def test_a_healthy_folder_shows_lineage_and_no_problems(chain):
    _, out, (full, d1, d2) = chain
    report = api.snapshot_catalog(out)
    assert report["ok"] and report["problems"] == []
    assert [b["chain"] for b in report["bundles"]] == [
        [full.snapshot_id], [full.snapshot_id, d1.snapshot_id], [full.snapshot_id, d1.snapshot_id, d2.snapshot_id]]


def test_missing_and_damaged_bundles_break_their_descendants(chain):
    _, out, (full, d1, d2) = chain
    shutil.rmtree(d2.path)  # the archive is still there: d2 stays usable
    (Path(full.path) / "prompts" / "a_v1.yaml").write_bytes(b"tampered\n")
    report = api.snapshot_catalog(out)
    found = problems_of(report)
    assert found["checksums"] == {full.snapshot_id}
    assert found["broken_chain"] == {d1.snapshot_id, d2.snapshot_id}
    assert "missing" not in found
    assert report["bundles"][2]["location"].endswith(layout.ARCHIVE_SUFFIX)
    quick = api.snapshot_catalog(out, quick=True)
    assert quick["ok"], quick["problems"]  # --quick reads manifests only
    Path(layout.archive_path(Path(d2.path))).unlink()
    shutil.rmtree(d1.path)
    found = problems_of(api.snapshot_catalog(out, quick=True))
    assert found["missing"] == {d1.snapshot_id, d2.snapshot_id}


def test_a_delta_whose_parent_is_not_catalogued_is_a_broken_chain(chain, tmp_path):
    repo, out, (full, d1, _) = chain
    other = tmp_path / "other"
    delta = snapshot.export_delta(repo, d1.path, other)  # parent lives in another folder
    report = api.snapshot_catalog(other)
    assert problems_of(report) == {"broken_chain": {delta.snapshot_id}}
    assert report["bundles"][0]["chain"] is None


def test_torn_lines_duplicates_and_uncatalogued_bundles_are_reported(chain):
    repo, out, (full, *_) = chain
    path = layout.catalog_path(out)
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + lines[0] + '{"snapshot_id": "torn')  # a duplicate and a crash mid-write
    extra = snapshot.export_snapshot(repo, out)  # appends after the torn line on a line of its own
    shutil.copytree(full.path, out / "knowledge_snapshot_20000101_000000")
    report = api.snapshot_catalog(out)
    found = problems_of(report)
    assert found["unreadable_line"] and found["duplicate"] == {full.snapshot_id}
    assert found["uncatalogued"] == {"knowledge_snapshot_20000101_000000"}
    assert extra.snapshot_id in {b["snapshot_id"] for b in report["bundles"]}


def test_concurrent_appends_never_interleave(tmp_path):
    path = tmp_path / layout.CATALOG

    def writer(n: int) -> None:
        for i in range(50):
            catalog.append_line(path, {"writer": n, "i": i, "pad": "x" * 3000})

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    entries = [json.loads(line) for line in path.read_text().splitlines()]
    assert len(entries) == 300 and {(e["writer"], e["i"]) for e in entries} == {(n, i) for n in range(6)
                                                                                  for i in range(50)}


def test_catalog_of_a_missing_folder_is_an_error(tmp_path):
    with pytest.raises(BundleError):
        api.snapshot_catalog(tmp_path / "nope")


def test_cli_catalog_exits_3_on_problems(chain):
    from click.testing import CliRunner

    from engine.cli import cli as main

    _, out, (_, d1, _) = chain
    runner = CliRunner()
    ok = runner.invoke(main, ["snapshot", "catalog", str(out)])
    assert ok.exit_code == 0, ok.output
    shutil.rmtree(d1.path)
    bad = runner.invoke(main, ["snapshot", "catalog", str(out), "--json"])
    assert bad.exit_code == 3
    assert {p["code"] for p in json.loads(bad.output)["problems"]} == {"missing", "broken_chain"}
