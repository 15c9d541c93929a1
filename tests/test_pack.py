"""Packing bundles into reproducible .tar.zst archives, and refusing hostile archives safely."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
import zstandard
from snapshot_helpers import synthetic_bundle

from engine.errors import UnsafeArchive
from engine.snapshot import pack_bundle, verify_bundle
from engine.snapshot.reader import open_bundle
from engine.snapshot.unpack import UnpackLimits, safe_unpack

TOP = "knowledge_snapshot_20240101_000000"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("pack")
    return Path(synthetic_bundle(tmp / "snaps", tmp, count=200, dims=8, backend="faiss").path)


def test_pack_is_reproducible_and_well_formed(bundle: Path, tmp_path: Path):
    first = pack_bundle(bundle)
    assert first == bundle.parent / f"{bundle.name}.tar.zst"
    data = first.read_bytes()
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    os.utime(copy / "manifest.json", (1, 1))  # file times and owners do not matter
    assert pack_bundle(copy).read_bytes() == data
    assert pack_bundle(bundle).read_bytes() == data
    with tarfile.open(fileobj=io.BytesIO(zstandard.ZstdDecompressor().decompress(data, max_output_size=1 << 30))) as tar:
        members = tar.getmembers()
    names = [m.name for m in members]
    assert names == sorted(names) and names[0] == bundle.name
    assert all(n == bundle.name or n.startswith(bundle.name + "/") for n in names)
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members} == {(0, 0, "", "", 0)}
    assert {m.mode for m in members if m.isdir()} == {0o755} and {m.mode for m in members if m.isfile()} == {0o644}
    assert f"{bundle.name}/checksums.sha256" in names and f"{bundle.name}/bpmn" in names


@pytest.mark.skipif(not (shutil.which("tar") and shutil.which("zstd") and shutil.which("sha256sum")),
                    reason="needs system tar, zstd and sha256sum (apt-get install zstd)")
def test_system_tar_and_zstd_unpack_and_sha256sum_checks(bundle: Path, tmp_path: Path):
    archive = pack_bundle(bundle)
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    subprocess.run(["tar", "--use-compress-program=unzstd", "-xf", str(archive)], cwd=one, check=True)
    subprocess.run(f"zstd -dc '{archive}' | tar -x", shell=True, cwd=two, check=True)
    for root in (one, two):
        done = subprocess.run(["sha256sum", "-c", "--strict", "checksums.sha256"], cwd=root / bundle.name,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stdout + done.stderr
    assert verify_bundle(one / bundle.name).ok


def test_verify_accepts_the_archive_and_reports_bundle_relative_paths(bundle: Path, tmp_path: Path):
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    archive = pack_bundle(copy)
    assert verify_bundle(archive).ok
    with open(copy / "examples/examples_v1.jsonl", "ab") as fh:
        fh.write(b"{}\n")
    archive = pack_bundle(copy)
    report = verify_bundle(archive)
    assert not report.ok and "examples/examples_v1.jsonl" in {e["path"] for e in report.to_json()["errors"]}


# --- hostile archives -----------------------------------------------------------------------------


def make_archive(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    path.write_bytes(zstandard.ZstdCompressor().compress(buf.getvalue()))
    return path


def entry(name: str, data: bytes = b"x", kind: bytes = tarfile.REGTYPE, link: str = "") -> tuple:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, (data if kind == tarfile.REGTYPE else None)


HOSTILE = {
    "dotdot": [entry(f"{TOP}/ok.txt"), entry(f"{TOP}/../../escaped.txt")],
    "absolute": [entry("/tmp/procos_absolute_escape.txt")],
    "symlink": [entry(f"{TOP}/manifest.json", kind=tarfile.SYMTYPE, link="/etc/passwd")],
    "hardlink": [entry(f"{TOP}/a"), entry(f"{TOP}/b", kind=tarfile.LNKTYPE, link="/etc/passwd")],
    "device": [entry(f"{TOP}/dev", kind=tarfile.CHRTYPE)],
    "fifo": [entry(f"{TOP}/fifo", kind=tarfile.FIFOTYPE)],
    "two_tops": [entry(f"{TOP}/a"), entry("other/b")],
    "duplicate": [entry(f"{TOP}/a"), entry(f"{TOP}/a", b"again")],
    "bad_top": [entry("not_a_bundle/a")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archive_is_refused_and_nothing_escapes(case: str, tmp_path: Path):
    archive = make_archive(tmp_path / f"{TOP}.tar.zst", HOSTILE[case])
    unpack_root = tmp_path / "unpack"
    unpack_root.mkdir()
    before = set(tmp_path.rglob("*"))
    with pytest.raises(UnsafeArchive) as info:
        safe_unpack(archive, unpack_root)
    assert str(info.value)
    assert list(unpack_root.iterdir()) == []  # the temporary folder is gone
    assert set(tmp_path.rglob("*")) == before
    assert not Path("/tmp/procos_absolute_escape.txt").exists()
    with pytest.raises(UnsafeArchive):
        verify_bundle(archive, tmp_dir=str(unpack_root))
    assert list(unpack_root.iterdir()) == []


def test_oversize_members_and_totals_are_refused(tmp_path: Path):
    archive = make_archive(tmp_path / f"{TOP}.tar.zst",
                           [entry(f"{TOP}/a", b"a" * 1000), entry(f"{TOP}/b", b"b" * 1000)])
    with pytest.raises(UnsafeArchive, match="per file"):
        safe_unpack(archive, tmp_path, UnpackLimits(max_member_bytes=999))
    with pytest.raises(UnsafeArchive, match="unpacks to more than"):
        safe_unpack(archive, tmp_path, UnpackLimits(max_total_bytes=1500))
    with pytest.raises(UnsafeArchive, match="more than 1 members"):
        safe_unpack(archive, tmp_path, UnpackLimits(max_members=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == [archive.name]


def test_garbage_is_not_an_archive(tmp_path: Path):
    bad = tmp_path / f"{TOP}.tar.zst"
    bad.write_bytes(b"not zstd at all")
    with pytest.raises(UnsafeArchive):
        with open_bundle(bad):
            pass


# --- an archive is exactly one zstd frame holding one tar: anything else is a changed file -------------


def _tar_bytes(bundle: Path) -> bytes:
    archive = pack_bundle(bundle)
    return zstandard.ZstdDecompressor().decompress(archive.read_bytes(), max_output_size=1 << 30)


def _changed_archives(bundle: Path) -> dict[str, bytes]:
    data = pack_bundle(bundle).read_bytes()
    tar = _tar_bytes(bundle)
    return {
        "bytes appended after the zstd frame": data + b"appended",
        "one zero byte appended": data + b"\x00",
        "a second zstd frame": data + zstandard.ZstdCompressor().compress(b"more data"),
        "a second copy of the whole archive": data + data,
        "truncated": data[:-7],
        "data after the tar end-of-archive": zstandard.ZstdCompressor().compress(tar + b"trailing" + b"\x00" * 504),
        "a second tar after the first": zstandard.ZstdCompressor().compress(tar + tar),
    }


@pytest.mark.parametrize("case", ["bytes appended after the zstd frame", "one zero byte appended",
                                  "a second zstd frame", "a second copy of the whole archive", "truncated",
                                  "data after the tar end-of-archive", "a second tar after the first"])
def test_a_changed_archive_fails_verification_naming_it_and_imports_nothing(bundle: Path, tmp_path: Path, case):
    from engine import api
    from engine.errors import ArchiveDamaged

    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    archive = copy.parent / f"{copy.name}.tar.zst"
    archive.write_bytes(_changed_archives(copy)[case])
    report = verify_bundle(archive).to_json()
    assert report["ok"] is False and [e["path"] for e in report["errors"]] == [archive.name], report
    target = tmp_path / "target"
    with pytest.raises(ArchiveDamaged) as info:
        api.import_snapshot(str(archive), f"faiss:{target}")
    assert archive.name in info.value.message and info.value.exit_code == 3
    assert not target.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".procos-unpack-")] == []


def test_the_packed_archive_is_one_frame_with_a_checksum_and_still_verifies(bundle: Path):
    archive = pack_bundle(bundle)
    assert zstandard.get_frame_parameters(archive.read_bytes()).has_checksum
    assert verify_bundle(archive).ok


def test_a_huge_zero_tail_inside_the_frame_is_refused_with_bounded_memory(bundle: Path, tmp_path: Path):
    """512 MiB of zeros after the tar's end compress to almost nothing; the check stops after 1 MiB."""
    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    tar = _tar_bytes(copy)
    archive = copy.parent / f"{copy.name}.tar.zst"
    with open(archive, "wb") as fh, zstandard.ZstdCompressor().stream_writer(fh) as z:
        z.write(tar)
        zeros = bytes(1 << 20)
        for _ in range(512):
            z.write(zeros)
    # VmHWM, not ru_maxrss: ru_maxrss survives exec, so it would report the forking test process's size
    code = ("import re, sys; from engine.snapshot import verify_bundle; r = verify_bundle(sys.argv[1]); "
            "hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read()).group(1); "
            "print(r.ok, r.errors[0].problem if r.errors else '', hwm)")
    done = subprocess.run([os.sys.executable, "-c", code, str(archive)], capture_output=True, text=True, timeout=120)
    ok, *problem, rss_kib = done.stdout.split()
    assert ok == "False" and "end-of-archive" in " ".join(problem), done.stdout + done.stderr
    assert int(rss_kib) < 400_000, f"peak RSS {int(rss_kib) // 1024} MiB"


def test_a_killed_unpack_leaves_no_complete_looking_bundle_and_the_next_unpack_cleans_up(bundle: Path,
                                                                                         tmp_path: Path):
    from engine.snapshot.unpack import PARTIAL, WRITER_FILE

    parent = tmp_path / "unpacks"
    parent.mkdir()
    code = ("import json, os, sys; from engine.snapshot import unpack; real = unpack._copy_member\n"
            "def copy(tar, member, target, archive):\n"
            "    real(tar, member, target, archive)\n"
            "    if member.name.endswith('manifest.json'): os.kill(os.getpid(), 9)\n"
            "unpack._copy_member = copy\n"
            "unpack.safe_unpack(sys.argv[1], sys.argv[2])\n")
    archive = pack_bundle(bundle)
    done = subprocess.run([os.sys.executable, "-c", code, str(archive), str(parent)], timeout=120)
    assert done.returncode == -9
    [left] = list(parent.iterdir())
    assert sorted(p.name for p in left.iterdir()) == sorted([PARTIAL, WRITER_FILE])  # no bundle-named folder
    assert (left / PARTIAL / "manifest.json").is_file()  # it was killed after the manifest, before the rest
    tmp, root = safe_unpack(archive, parent)
    assert [p.name for p in parent.iterdir()] == [tmp.name] and verify_bundle(root).ok
    shutil.rmtree(tmp)


def test_a_verify_killed_while_removing_its_unpacked_copy_leaves_no_complete_looking_bundle(bundle: Path,
                                                                                            tmp_path: Path):
    """Found by the chaos campaign: the unpacked bundle was deleted file by file under its own name."""
    archive = pack_bundle(bundle)
    parent = tmp_path / "tmp"
    parent.mkdir()
    code = ("import os, sys, shutil; from engine.snapshot import staging, verify_bundle\n"
            "def dying(path, ignore_errors=False):\n"
            "    for root, _, files in os.walk(path):\n"
            "        for name in files:\n"
            "            os.remove(os.path.join(root, name)); os.kill(os.getpid(), 9)\n"
            "staging.shutil = type('S', (), {'rmtree': staticmethod(dying)})\n"
            "verify_bundle(sys.argv[1], tmp_dir=sys.argv[2])\n")
    assert subprocess.run([os.sys.executable, "-c", code, str(archive), str(parent)], timeout=120).returncode == -9
    [left] = list(parent.iterdir())
    assert not any(layout_name(p.name) for p in left.iterdir()), sorted(p.name for p in left.iterdir())


def layout_name(name: str) -> bool:
    from engine.snapshot import layout

    return layout.is_bundle_name(name)
