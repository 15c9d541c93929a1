"""Once a bundle is published (renamed into place) the export has succeeded: later steps only warn."""

from __future__ import annotations

from pathlib import Path

from engine import api


def test_a_catalog_failure_after_publishing_is_a_warning_not_a_failure(tmp_path: Path):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 50, 8)
    out = tmp_path / "snaps"
    out.mkdir()
    (out / "snapshot_catalog.jsonl").mkdir()  # the catalog cannot be appended to
    first = api.export_snapshot(uri, out)
    assert api.verify_snapshot(first["path"])["ok"]
    assert any("catalog" in w for w in first["warnings"])
    assert sorted(p.name for p in out.iterdir()) == sorted([Path(first["path"]).name, "snapshot_catalog.jsonl"])


def test_pack_failure_keeps_the_published_bundle_and_says_how_to_retry(tmp_path: Path, monkeypatch):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 50, 8)
    import engine.snapshot.pack as pack

    def broken(bundle, level=6):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(pack, "pack_bundle", broken)  # inject a full disk into the real pack step
    result = api.export_snapshot(uri, tmp_path / "snaps", pack=True)
    assert api.verify_snapshot(result["path"])["ok"] and "archive" not in result
    assert any("procos snapshot pack" in w for w in result["warnings"])
