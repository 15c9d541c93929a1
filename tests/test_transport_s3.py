"""Push, list, pull and import bundles through a real S3 API (moto_server over HTTP on 127.0.0.1)."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from s3_support import fake_bundle, locked_bucket, ok_json, procos, procos_env, seeded_bundle

from engine import api
from engine.repository import open_repository
from engine.snapshot import layout

LIST_KEYS = {"name", "snapshot_id", "created_utc", "kind", "parent", "record_count", "bytes", "signed", "encrypted"}


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_bundle(tmp_path_factory.mktemp("transport"))


def files_of(root: Path) -> dict[str, bytes]:
    files, _ = layout.relative_files(root)
    return {rel: hashlib.sha256(layout.member(root, rel).read_bytes()).digest() for rel in files}


def manifest(root: Path) -> dict:
    return json.loads(layout.manifest_path(root).read_text())


def test_push_list_pull_round_trip_with_multipart_checksums(s3, bundle: Path, tmp_path: Path):
    local = files_of(bundle)
    sizes = {rel: layout.member(bundle, rel).stat().st_size for rel in local}
    assert max(sizes.values()) > 5 << 20  # at least one file goes up in several parts

    pushed = ok_json("snapshot", "push", str(bundle), s3.url("prod"), "--part-size", "5")
    assert pushed["destination"] == f"{s3.url('prod')}/{bundle.name}"
    assert pushed["bytes"] == pushed["bytes_sent"] == sum(sizes.values()) and pushed["bytes_skipped"] == 0
    assert s3.keys("prod/") == {f"prod/{bundle.name}/{rel}": size for rel, size in sizes.items()}
    big = max(sizes, key=sizes.get)
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"prod/{bundle.name}/{big}", ChecksumMode="ENABLED")
    assert str(head["ETag"]).strip('"').endswith("-2")  # a multipart object, and S3 kept its SHA-256
    assert head["ChecksumSHA256"] and head["Metadata"]["procos-sha256"] == local[big].hex()

    [entry] = ok_json("snapshot", "list", s3.url("prod"))
    doc = manifest(bundle)
    assert LIST_KEYS <= set(entry)
    assert entry == {**entry, "name": bundle.name, "snapshot_id": doc["snapshot_id"], "kind": "full", "parent": None,
                     "created_utc": doc["created_utc"], "record_count": doc["record_count"],
                     "bytes": sum(sizes.values()), "signed": False, "encrypted": False}

    pulled = ok_json("snapshot", "pull", f"{s3.url('prod')}/{bundle.name}", str(tmp_path / "restore"))
    target = tmp_path / "restore" / bundle.name
    assert pulled["path"] == str(target) and pulled["verified"] is True
    assert pulled["bytes_received"] == sum(sizes.values()) and pulled["bytes_skipped"] == 0
    assert files_of(target) == local
    assert sorted(p.name for p in (tmp_path / "restore").iterdir()) == [bundle.name]  # no partial folder left

    again = ok_json("snapshot", "push", str(bundle), s3.url("prod"), "--part-size", "5")
    assert again["bytes_sent"] == 0 and again["bytes_skipped"] == sum(sizes.values())


def test_pull_refuses_to_overwrite_and_names_a_missing_bundle(s3, bundle: Path, tmp_path: Path):
    api.push_snapshot(bundle, s3.url("p"))
    (tmp_path / "out" / bundle.name).mkdir(parents=True)
    proc = procos("snapshot", "pull", f"{s3.url('p')}/{bundle.name}", str(tmp_path / "out"))
    assert proc.returncode == 1 and "already exists" in proc.stderr
    proc = procos("snapshot", "pull", f"{s3.url('p')}/knowledge_snapshot_20000101_000000", str(tmp_path / "out"))
    assert proc.returncode == 1 and "does not exist" in proc.stderr and "Try:" in proc.stderr


def test_pull_that_fails_verification_leaves_nothing_in_the_folder(s3, bundle: Path, tmp_path: Path):
    api.push_snapshot(bundle, s3.url("bad"))
    key = f"bad/{bundle.name}/{layout.MANIFEST}"
    damaged = manifest(bundle) | {"record_count": 1}  # a manifest the rows contradict, with its own checksum
    s3.client.put_object(Bucket=s3.bucket, Key=key, Body=json.dumps(damaged).encode(), ChecksumAlgorithm="SHA256")
    proc = procos("snapshot", "pull", f"{s3.url('bad')}/{bundle.name}", str(tmp_path / "out"))
    assert proc.returncode == 3, proc.stderr
    assert "failed verification" in proc.stderr
    assert list((tmp_path / "out").iterdir()) == []


def test_import_from_s3_verifies_imports_and_removes_the_temporary_copy(s3, bundle: Path, tmp_path: Path):
    api.push_snapshot(bundle, s3.url("prod"), part_size_mib=5)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    target = f"faiss:{tmp_path / 'target'}"
    result = ok_json("snapshot", "import", f"{s3.url('prod')}/{bundle.name}", target,
                     env=procos_env(TMPDIR=str(scratch)))
    assert result["imported"] == manifest(bundle)["record_count"]
    assert result["snapshot_id"] == manifest(bundle)["snapshot_id"]
    assert list(scratch.iterdir()) == []  # the pulled copy is gone
    repo = open_repository(target)
    try:
        assert repo.count() == manifest(bundle)["record_count"]
    finally:
        repo.close()


def test_import_of_a_remote_delta_chain(s3, tmp_path: Path):
    store = f"faiss:{tmp_path / 'src'}?index=flat"
    api.seed_store(store, 300, 16, seed=1)
    full = api.export_snapshot(store, tmp_path / "snaps")
    api.seed_store(store, 40, 16, seed=2)  # rewrites 40 records
    delta = api.export_delta(store, full["path"], tmp_path / "snaps")
    for path in (full["path"], delta["path"]):
        api.push_snapshot(path, s3.url("chain"))
    names = [Path(full["path"]).name, Path(delta["path"]).name]
    entries = {e["name"]: e for e in api.list_snapshots(s3.url("chain"))}
    assert entries[names[1]]["kind"] == "delta"
    assert entries[names[1]]["parent"] == {"snapshot_id": full["snapshot_id"], "content_hash": full["content_hash"]}
    target = f"faiss:{tmp_path / 'target'}"
    result = api.import_snapshot([f"{s3.url('chain')}/{n}" for n in names], target)
    assert result["snapshot_id"] == delta["snapshot_id"]
    local = f"faiss:{tmp_path / 'target-local'}"
    api.import_snapshot([full["path"], delta["path"]], local)
    remote_state = api.export_snapshot(target, tmp_path / "check-remote")["content_hash"]
    local_state = api.export_snapshot(local, tmp_path / "check-local")["content_hash"]
    assert remote_state == local_state


def test_sse_storage_class_and_object_lock_as_the_server_records_them(s3, bundle: Path):
    bucket = locked_bucket(s3)
    until = (datetime.now(UTC) + timedelta(days=3)).date()
    pushed = ok_json("snapshot", "push", str(bundle), f"s3://{bucket}/archive", "--part-size", "5", "--sse", "kms",
                     "--kms-key-id", "procos-test-key", "--storage-class", "STANDARD_IA",
                     "--retain-until", until.isoformat(), "--retention-mode", "compliance")
    assert pushed["retain_until"] == f"{until.isoformat()}T00:00:00Z" and pushed["retention_mode"] == "compliance"
    keys = [o["Key"] for o in s3.client.list_objects_v2(Bucket=bucket, Prefix="archive/")["Contents"]]
    assert len(keys) == len(files_of(bundle))
    for key in keys:
        head = s3.client.head_object(Bucket=bucket, Key=key)
        assert head["ServerSideEncryption"] == "aws:kms" and head["SSEKMSKeyId"] == "procos-test-key"
        assert head["StorageClass"] == "STANDARD_IA"
        assert head["ObjectLockMode"] == "COMPLIANCE"
        assert head["ObjectLockRetainUntilDate"] == datetime(until.year, until.month, until.day, tzinfo=UTC)
    version = s3.client.head_object(Bucket=bucket, Key=keys[0])["VersionId"]
    with pytest.raises(Exception, match="AccessDenied"):
        s3.client.delete_object(Bucket=bucket, Key=keys[0], VersionId=version)

    api.push_snapshot(bundle, s3.url("sse"), sse="aes256")
    head = s3.client.head_object(Bucket=s3.bucket, Key=f"sse/{bundle.name}/{layout.MANIFEST}")
    assert head["ServerSideEncryption"] == "AES256"


def test_retain_until_on_a_bucket_without_object_lock_uploads_nothing(s3, bundle: Path):
    proc = procos("snapshot", "push", str(bundle), s3.url("x"), "--retain-until",
                  (datetime.now(UTC) + timedelta(days=1)).date().isoformat())
    assert proc.returncode == 1 and "Object Lock" in proc.stderr and "Try:" in proc.stderr
    assert s3.keys() == {}


def test_an_incomplete_push_is_listed_apart_refused_by_pull_and_import_and_aborted(s3, bundle: Path, tmp_path: Path):
    api.push_snapshot(bundle, s3.url("inc"))
    name = "knowledge_snapshot_20240101_000000"
    s3.client.put_object(Bucket=s3.bucket, Key=f"inc/{name}/checksums.sha256", Body=b"x")
    upload = s3.client.create_multipart_upload(Bucket=s3.bucket, Key=f"inc/{name}/index.faiss")["UploadId"]
    s3.client.upload_part(Bucket=s3.bucket, Key=f"inc/{name}/index.faiss", UploadId=upload, PartNumber=1, Body=b"y")
    assert [e["name"] for e in ok_json("snapshot", "list", s3.url("inc"))] == [bundle.name]
    [incomplete] = ok_json("snapshot", "list", s3.url("inc"), "--incomplete")
    assert incomplete["name"] == name and incomplete["objects"] == 1 and incomplete["uploads"] == 1
    proc = procos("snapshot", "pull", f"{s3.url('inc')}/{name}", str(tmp_path / "out"))
    assert proc.returncode == 1 and "not a complete bundle" in proc.stderr
    proc = procos("snapshot", "import", f"{s3.url('inc')}/{name}", f"faiss:{tmp_path / 't'}")
    assert proc.returncode == 1 and "not a complete bundle" in proc.stderr
    assert not (tmp_path / "t").exists()

    result = ok_json("snapshot", "abort-incomplete", s3.url("inc"))
    assert result["removed"] == [name] and result["aborted_uploads"] == 1
    assert s3.uploads("inc/") == [] and not any(k.startswith(f"inc/{name}/") for k in s3.keys("inc/"))
    assert [e["name"] for e in ok_json("snapshot", "list", s3.url("inc"))] == [bundle.name]  # untouched
    assert ok_json("snapshot", "list", s3.url("inc"), "--incomplete") == []


def test_archives_and_encrypted_bundles_are_single_objects(s3, bundle: Path, tmp_path: Path):
    archive = Path(api.pack_snapshot(bundle)["archive"])
    pushed = api.push_snapshot(archive, s3.url("arch"), part_size_mib=5)
    assert pushed["destination"] == f"{s3.url('arch')}/{archive.name}" and pushed["files"] == 1
    sealed = tmp_path / f"{archive.name}.age"
    sealed.write_bytes(b"age-encryption.org/v1\n" + bytes(range(256)) * 100)  # opaque to procos, as ciphertext is
    api.push_snapshot(sealed, s3.url("arch"))
    assert set(s3.keys("arch/")) == {f"arch/{archive.name}", f"arch/{sealed.name}"}
    [entry] = api.list_snapshots(s3.url("arch"))  # two forms of one bundle: one entry
    assert entry["snapshot_id"] == manifest(bundle)["snapshot_id"] and entry["encrypted"] is True
    assert entry["bytes"] == archive.stat().st_size + sealed.stat().st_size

    pulled = api.pull_snapshot(f"{s3.url('arch')}/{bundle.name}", tmp_path / "restore")
    assert pulled["path"] == str(tmp_path / "restore" / archive.name) and pulled["verified"] is True
    assert Path(pulled["path"]).read_bytes() == archive.read_bytes()
    opaque = api.pull_snapshot(f"{s3.url('arch')}/{sealed.name}", tmp_path / "restore")
    assert opaque["verified"] is False and Path(opaque["path"]).read_bytes() == sealed.read_bytes()
    archive.unlink()


def test_local_folder_listing_merges_forms_and_lists_pull_partials_apart(tmp_path: Path):
    folder = tmp_path / "snaps"
    old = fake_bundle(folder, "knowledge_snapshot_20240101_000000", created_utc="2024-01-01T00:00:00Z")
    new = fake_bundle(folder, "knowledge_snapshot_20240301_000000", created_utc="2024-03-01T00:00:00Z")
    (folder / f"{new.name}.tar.zst.age").write_bytes(b"sealed")
    (folder / ".knowledge_snapshot_20240401_000000.pull-partial").mkdir()
    entries = api.list_snapshots(folder)
    assert [e["name"] for e in entries] == [new.name, old.name]
    assert entries[0]["encrypted"] is True and entries[1]["encrypted"] is False
    [partial] = api.list_snapshots(folder, incomplete=True)
    assert partial["name"] == "knowledge_snapshot_20240401_000000"
    assert api.abort_incomplete(folder)["removed"] == [partial["name"]]
    assert api.list_snapshots(folder, incomplete=True) == [] and len(api.list_snapshots(folder)) == 2


def test_prune_on_s3_reports_object_lock_retention_and_removes_the_rest(s3, tmp_path: Path):
    bucket = locked_bucket(s3)
    until = (datetime.now(UTC) + timedelta(days=2)).date().isoformat()
    names = [f"knowledge_snapshot_2024010{d}_000000" for d in (1, 2, 3, 4)]
    for day, name in enumerate(names, start=1):
        path = fake_bundle(tmp_path, name, created_utc=f"2024-01-0{day}T00:00:00Z")
        api.push_snapshot(path, f"s3://{bucket}/p", retain_until=until if day == 2 else None)
    plan = ok_json("snapshot", "prune", f"s3://{bucket}/p", "--keep-last", "1", "--dry-run")
    assert plan["keep"] == [names[3]] and plan["retained"] == [names[1]]
    assert plan["remove"] == [names[2], names[0]] and "retention until" in plan["reasons"][names[1]][0]
    assert len(api.list_snapshots(f"s3://{bucket}/p")) == 4  # the dry run changed nothing

    result = ok_json("snapshot", "prune", f"s3://{bucket}/p", "--keep-last", "1")
    assert result["removed"] == [names[2], names[0]] and result["failed"] == {}
    assert [e["name"] for e in api.list_snapshots(f"s3://{bucket}/p")] == [names[3], names[1]]
    versions = s3.client.list_object_versions(Bucket=bucket, Prefix=f"p/{names[0]}/")
    assert not versions.get("Versions") and not versions.get("DeleteMarkers")  # gone, not hidden


def test_a_complete_remote_bundle_with_another_manifest_is_never_overwritten(s3, bundle: Path, tmp_path: Path):
    api.push_snapshot(bundle, s3.url("same"))
    before = {k: s3.client.head_object(Bucket=s3.bucket, Key=k)["ETag"] for k in s3.keys("same/")}
    impostor = fake_bundle(tmp_path, bundle.name, created_utc="2024-01-01T00:00:00Z")  # same name, other content
    proc = procos("snapshot", "push", str(impostor), s3.url("same"))
    assert proc.returncode == 1 and "another manifest.json" in proc.stderr and "nothing was uploaded" in proc.stderr
    assert {k: s3.client.head_object(Bucket=s3.bucket, Key=k)["ETag"] for k in s3.keys("same/")} == before


def test_a_signed_bundle_keeps_its_signature_and_is_listed_as_signed(s3, tmp_path: Path):
    root = fake_bundle(tmp_path, "knowledge_snapshot_20240101_000000", created_utc="2024-01-01T00:00:00Z")
    (root / "checksums.sha256.asc").write_text("-----BEGIN PGP SIGNATURE-----\n...\n", encoding="utf-8")
    (root / "stray.txt").write_text("not part of the bundle")
    proc = procos("snapshot", "push", str(root), s3.url("signed"))
    assert proc.returncode == 1 and "stray.txt" in proc.stderr and s3.keys("signed/") == {}
    (root / "stray.txt").unlink()
    api.push_snapshot(root, s3.url("signed"))
    assert f"signed/{root.name}/checksums.sha256.asc" in s3.keys("signed/")
    [entry] = api.list_snapshots(s3.url("signed"))
    assert entry["signed"] is True
    [local] = api.list_snapshots(tmp_path)
    assert local["signed"] is True


def test_an_archive_is_never_replaced_by_other_bytes_of_the_same_name(s3, tmp_path: Path):
    archive = tmp_path / "knowledge_snapshot_20240101_000000.tar.zst.age"  # opaque to procos
    archive.write_bytes(b"first archive")
    api.push_snapshot(archive, s3.url("a"))
    assert api.push_snapshot(archive, s3.url("a"))["bytes_skipped"] == archive.stat().st_size
    archive.write_bytes(b"other archive")
    proc = procos("snapshot", "push", str(archive), s3.url("a"))
    assert proc.returncode == 1 and "holds other bytes" in proc.stderr
    body = s3.client.get_object(Bucket=s3.bucket, Key=f"a/{archive.name}")["Body"].read()
    assert body == b"first archive"
