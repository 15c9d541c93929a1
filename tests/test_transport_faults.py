"""Transport under faults: a push or pull killed with SIGKILL resumes without sending again what is
there; connections that drop at random do not keep a push or pull from completing and verifying."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from s3_support import TcpProxy, fake_bundle, ok_json, procos, procos_env, seeded_bundle

from engine import api
from engine.errors import TransportError
from engine.snapshot import layout

MiB = 1 << 20


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seeded_bundle(tmp_path_factory.mktemp("faults"))


def wait_for(predicate, timeout: float = 60.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def start(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "engine.cli", *args], env=procos_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def kill(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=20)


def digests(root: Path) -> dict[str, str]:
    files, _ = layout.relative_files(root)
    return {rel: hashlib.sha256(layout.member(root, rel).read_bytes()).hexdigest() for rel in files}


def test_push_killed_in_a_multipart_upload_resumes_without_sending_the_parts_again(s3, bundle: Path, tmp_path: Path):
    url = s3.url("kill")
    prefix = f"kill/{bundle.name}/"
    slow = TcpProxy(s3.endpoint, bytes_per_second=3 * MiB)
    proc = start("snapshot", "push", str(bundle), url, "--part-size", "5", "--concurrency", "1",
                 "--endpoint-url", slow.url, "--json")
    try:
        def parts_uploaded():
            for upload in s3.uploads(prefix):
                parts = s3.client.list_parts(Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                if parts.get("Parts"):
                    return upload, parts["Parts"]
            return None

        upload, _ = wait_for(parts_uploaded, what="a part of a multipart upload on the server")
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        slow.close()
    assert proc.returncode == -signal.SIGKILL
    parts = s3.client.list_parts(Bucket=s3.bucket, Key=upload["Key"], UploadId=upload["UploadId"])["Parts"]
    kept = sum(p["Size"] for p in parts)
    assert kept >= 5 * MiB

    # the interrupted push is not a complete bundle anywhere
    assert f"{prefix}{layout.MANIFEST}" not in s3.keys(prefix)
    assert api.list_snapshots(url) == []
    assert [e["name"] for e in api.list_snapshots(url, incomplete=True)] == [bundle.name]
    refused = procos("snapshot", "pull", f"{url}/{bundle.name}", str(tmp_path / "early"))
    assert refused.returncode == 1 and "not a complete bundle" in refused.stderr

    counting = TcpProxy(s3.endpoint)
    try:
        resumed = ok_json("snapshot", "push", str(bundle), url, "--part-size", "5", "--concurrency", "1",
                          "--endpoint-url", counting.url)
    finally:
        counting.close()
    assert resumed["bytes_skipped"] >= kept > 0
    assert resumed["bytes_sent"] + resumed["bytes_skipped"] == resumed["bytes"]
    # what went over the wire this time: the bundle minus the parts already there, plus HTTP overhead
    assert counting.upstream_bytes < resumed["bytes"] - kept + 512 * 1024
    assert s3.uploads(prefix) == []  # the resumed upload was completed, nothing left over
    assert [e["name"] for e in api.list_snapshots(url)] == [bundle.name]
    pulled = api.pull_snapshot(f"{url}/{bundle.name}", tmp_path / "restore")
    assert pulled["verified"] and digests(Path(pulled["path"])) == digests(bundle)


def test_pull_killed_midway_resumes_from_the_parts_on_disk(s3, bundle: Path, tmp_path: Path):
    url = s3.url("pk")
    api.push_snapshot(bundle, url, part_size_mib=5)
    out = tmp_path / "out"
    slow = TcpProxy(s3.endpoint, bytes_per_second=3 * MiB)
    proc = start("snapshot", "pull", f"{url}/{bundle.name}", str(out), "--concurrency", "1",
                 "--endpoint-url", slow.url, "--json")
    state = out / f".{bundle.name}.pull-partial" / "state.json"
    try:
        def some_part_done():
            try:
                doc = json.loads(state.read_text())
            except (OSError, ValueError):
                return False
            return any(entry["done"] for entry in doc["objects"].values())

        wait_for(some_part_done, what="a downloaded part")
        kill(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        slow.close()
    assert not (out / bundle.name).exists()  # nothing appears before it is complete and verified
    assert [e["reason"] for e in api.list_snapshots(out, incomplete=True)] == ["a pull that did not finish"]
    resumed = api.pull_snapshot(f"{url}/{bundle.name}", out)
    assert resumed["bytes_skipped"] > 0
    assert resumed["bytes_received"] + resumed["bytes_skipped"] == resumed["bytes"]
    assert resumed["verified"] and digests(out / bundle.name) == digests(bundle)
    assert sorted(p.name for p in out.iterdir()) == [bundle.name]


def test_push_and_pull_complete_and_verify_through_a_proxy_that_drops_connections(s3, bundle: Path, tmp_path: Path):
    url = s3.url("flaky")
    proxy = TcpProxy(s3.endpoint, drop_rate=0.01, seed=7)
    try:
        pushed = api.push_snapshot(bundle, url, part_size_mib=5, concurrency=4, endpoint_url=proxy.url)
        drops_in_push = proxy.drops
        pulled = api.pull_snapshot(f"{url}/{bundle.name}", tmp_path / "restore", concurrency=4,
                                   endpoint_url=proxy.url)
    finally:
        proxy.close()
    assert drops_in_push > 0 and proxy.drops > drops_in_push  # connections were cut in both directions
    assert pushed["bytes_sent"] == pushed["bytes"]
    assert pulled["verified"] and digests(Path(pulled["path"])) == digests(bundle)
    for rel, digest in digests(bundle).items():
        head = s3.client.head_object(Bucket=s3.bucket, Key=f"flaky/{bundle.name}/{rel}")
        assert head["Metadata"]["procos-sha256"] == digest


def test_a_listing_cut_before_its_body_is_retried_never_taken_for_an_empty_location(s3, tmp_path: Path, monkeypatch):
    # botocore parses a 200 answer whose body never arrived as an empty listing: "no bundle there"
    for day in (1, 2):
        api.push_snapshot(fake_bundle(tmp_path, f"knowledge_snapshot_2024010{day}_000000",
                                      created_utc=f"2024-01-0{day}T00:00:00Z"), s3.url("lst"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # botocore's backoff is slow; procos retries on top
    proxy = TcpProxy(s3.endpoint, cut_body_rate=0.3, seed=11)
    outcomes = []
    try:
        # how many connections a listing takes varies, so run until enough answers were cut
        while len(outcomes) < 20 or (proxy.drops < 10 and len(outcomes) < 200):
            try:
                outcomes.append(len(api.list_snapshots(s3.url("lst"), endpoint_url=proxy.url)))
            except TransportError:
                outcomes.append("failed")
    finally:
        proxy.close()
    assert proxy.drops >= 10
    assert 0 not in outcomes and 1 not in outcomes
    assert outcomes.count(2) >= len(outcomes) // 2


def test_a_push_that_cannot_finish_exits_non_zero_naming_what_is_missing(s3, bundle: Path):
    big = sorted(rel for rel in digests(bundle) if layout.member(bundle, rel).stat().st_size > 2 * MiB)
    assert big
    choke = TcpProxy(s3.endpoint, cut_after=MiB)  # small requests pass, no connection carries a whole part
    try:
        proc = procos("snapshot", "push", str(bundle), s3.url("dead"), "--part-size", "5", "--endpoint-url",
                      choke.url, env=procos_env(AWS_MAX_ATTEMPTS="2"), timeout=600)
    finally:
        choke.close()
    assert proc.returncode == 1
    message = proc.stderr.splitlines()[0]
    assert message.startswith("Error: ") and "is incomplete" in message and "manifest.json was not uploaded" in message
    assert all(rel in message for rel in big)
    assert "run the same command again" in proc.stderr
    keys = s3.keys("dead/")
    assert keys and f"dead/{bundle.name}/{layout.MANIFEST}" not in keys
    assert not any(k.endswith(tuple(big)) for k in keys)
    assert api.list_snapshots(s3.url("dead")) == []


def test_push_memory_stays_bounded_by_part_size_times_concurrency(s3, tmp_path: Path):
    root = fake_bundle(tmp_path, "knowledge_snapshot_20240101_000000", created_utc="2024-01-01T00:00:00Z",
                       payload=hashlib.sha256(b"x").digest() * (96 * MiB // 32))  # a 96 MiB file
    script = (
        "import sys\n"
        "from engine import api\n"
        "import boto3, botocore.config\n"
        "def hwm():\n"
        "    return int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0].split()[1]) * 1024\n"
        "api.list_snapshots(sys.argv[2])\n"
        "before = hwm()\n"
        "api.push_snapshot(sys.argv[1], sys.argv[2], part_size_mib=5, concurrency=2)\n"
        "print(hwm() - before)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(root), s3.url("mem")], capture_output=True, text=True,
                          env=procos_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr
    growth = int(proc.stdout.strip())
    assert growth < 40 * MiB, f"peak RSS grew by {growth / MiB:.0f} MiB pushing a 96 MiB file"
