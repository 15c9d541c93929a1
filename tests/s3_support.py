"""A real S3 API for the transport tests: ``moto_server`` over HTTP on 127.0.0.1, and a TCP proxy that misbehaves.

Fixtures (loaded for the whole suite through ``pytest_plugins``; the server starts only when used):

- ``moto_endpoint`` (session): starts ``moto_server -H 127.0.0.1 -p PORT`` as a subprocess, yields its URL.
- ``s3``: per test, an :class:`S3Env`: fake credentials with a unique secret, a fresh bucket name,
  ``AWS_*`` variables set for this process and every ``procos`` subprocess (the host's AWS files are
  never read), and a boto3 client to look at what the server recorded.

:class:`TcpProxy` forwards loopback connections to the server from threads of the test process and
can drop connections at random (``drop_rate``: chance per forwarded chunk) and limit bandwidth.
"""

from __future__ import annotations

import os
import random
import shutil
import socket
import struct
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


@pytest.fixture(scope="session")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    exe = shutil.which("moto_server", path=str(Path(sys.executable).parent)) or shutil.which("moto_server")
    if exe is None:
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    port = free_port()
    log = tmp_path_factory.mktemp("moto") / "moto.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_listening(port)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class S3Env:
    endpoint: str
    bucket: str
    secret: str
    client: Any

    def url(self, prefix: str = "") -> str:
        return f"s3://{self.bucket}/{prefix}" if prefix else f"s3://{self.bucket}"

    def keys(self, prefix: str = "") -> dict[str, int]:
        found: dict[str, int] = {}
        for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return found

    def uploads(self, prefix: str = "") -> list[dict[str, Any]]:
        return self.client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix).get("Uploads", [])


@pytest.fixture
def s3(moto_endpoint: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> S3Env:
    """Credentials (a unique fake secret), the endpoint in the standard AWS variables, and a fresh bucket."""
    import boto3

    secret = f"procos-test-secret-{uuid.uuid4().hex}"
    values = {
        "AWS_ACCESS_KEY_ID": "AKIAPROCOSTEST", "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL_S3": moto_endpoint, "AWS_CONFIG_FILE": str(tmp_path / "no-aws-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-aws-credentials"), "AWS_EC2_METADATA_DISABLED": "true",
    }
    for name in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    client = boto3.client("s3", endpoint_url=moto_endpoint)
    bucket = f"procos-{uuid.uuid4().hex[:12]}"
    client.create_bucket(Bucket=bucket)
    return S3Env(moto_endpoint, bucket, secret, client)


def locked_bucket(env: S3Env) -> str:
    """A second bucket with Object Lock enabled (and so versioning)."""
    name = f"procos-lock-{uuid.uuid4().hex[:8]}"
    env.client.create_bucket(Bucket=name, ObjectLockEnabledForBucket=True)
    return name


class TcpProxy:
    """Forward 127.0.0.1:``port`` to ``upstream``; optionally drop connections at random and throttle.

    ``drop_rate`` is the chance that a forwarded chunk (at most 64 KiB) ends the connection with a
    reset instead; ``bytes_per_second`` limits the bandwidth of each direction of each connection.
    ``cut_after`` resets every connection once it has carried that many bytes to the server;
    ``cut_body_rate`` is the chance that a response is cut right after its headers, before its body.
    ``upstream_bytes`` counts what it forwarded to the server.
    """

    CHUNK = 64 * 1024

    def __init__(self, upstream: str, *, drop_rate: float = 0.0, bytes_per_second: float | None = None,
                 cut_after: int | None = None, cut_body_rate: float = 0.0, seed: int = 0) -> None:
        host, _, port = upstream.removeprefix("http://").partition(":")
        self.upstream = (host, int(port))
        self.drop_rate = drop_rate
        self.bytes_per_second = bytes_per_second
        self.cut_after = cut_after
        self.cut_body_rate = cut_body_rate
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.upstream_bytes = 0
        self.drops = 0
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self.closed = True
        self.server.close()

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.upstream)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.connections += 1
            pair = [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, pair, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, pair, False), daemon=True).start()

    def _drop(self) -> bool:
        return self._chance(self.drop_rate)

    def _chance(self, rate: float) -> bool:
        with self.lock:
            if rate and self.random.random() < rate:
                self.drops += 1
                return True
        return False

    def _over_budget(self, size: int, budget: list[int]) -> bool:
        budget[0] += size
        if self.cut_after is not None and budget[0] > self.cut_after:
            with self.lock:
                self.drops += 1
            return True
        return False

    def _pump(self, src: socket.socket, dst: socket.socket, pair: list[socket.socket], outbound: bool) -> None:
        budget = [0]
        after_headers = False
        try:
            while True:
                data = src.recv(self.CHUNK)
                if not data:
                    break
                cut_body = after_headers and self._chance(self.cut_body_rate)
                after_headers = not outbound and data.startswith(b"HTTP/") and data.endswith(b"\r\n\r\n")
                if cut_body or self._drop() or (outbound and self._over_budget(len(data), budget)):
                    for s in pair:  # a reset, as when a network path dies (shutdown wakes the other pump)
                        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        s.shutdown(socket.SHUT_RDWR)
                    break
                if outbound:
                    with self.lock:
                        self.upstream_bytes += len(data)
                if self.bytes_per_second:
                    time.sleep(len(data) / self.bytes_per_second)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in pair:
                try:
                    s.close()
                except OSError:
                    pass


def procos_env(**extra: str) -> dict[str, str]:
    """This process's environment (with the AWS variables the ``s3`` fixture set) for a procos subprocess."""
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    env.update(extra)
    return env


def procos(*args: str, env: dict[str, str] | None = None, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          env=env or procos_env(), timeout=timeout)


def seeded_bundle(root: Path, *, count: int = 6000, dim: int = 256) -> Path:
    """A real FAISS-source bundle of a few MB (an embeddings shard and index.faiss over 5 MiB each),
    made with ``procos store seed`` and ``procos snapshot export``."""
    store = f"faiss:{root / 'source'}?index=flat"
    for args in (("store", "seed", store, "--count", str(count), "--dim", str(dim)),
                 ("snapshot", "export", store, "--out", str(root / "snapshots"))):
        proc = procos(*args)
        assert proc.returncode == 0, proc.stderr
    [bundle] = [p for p in (root / "snapshots").iterdir() if p.name.startswith("knowledge_snapshot_")]
    return bundle


def ok_json(*args: str, env: dict[str, str] | None = None) -> Any:
    """Run ``procos ARGS --json``, require exit 0, return the parsed output."""
    import json

    proc = procos(*args, "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def fake_bundle(folder: Path, name: str, *, created_utc: str, kind: str = "full", parent: str | None = None,
                snapshot_id: str | None = None, payload: bytes = b"rows") -> Path:
    """A folder shaped like a bundle for listing and retention tests: manifest.json, one data file,
    checksums.sha256 (right digests). Not a verifiable bundle: only tests that never verify use it."""
    import hashlib
    import json

    root = folder / name
    (root / "embeddings").mkdir(parents=True)
    doc: dict[str, Any] = {"snapshot_id": snapshot_id or str(uuid.uuid4()), "created_utc": created_utc,
                           "kind": kind, "record_count": 1, "content_hash": hashlib.sha256(payload).hexdigest(),
                           "schema_version": 2}
    if parent is not None:
        doc["parent"] = {"snapshot_id": parent, "content_hash": "0" * 64}
    (root / "embeddings" / "part-00000.parquet").write_bytes(payload)
    (root / "manifest.json").write_text(json.dumps(doc, sort_keys=True), encoding="utf-8")
    lines = {rel: hashlib.sha256((root / rel).read_bytes()).hexdigest()
             for rel in ("embeddings/part-00000.parquet", "manifest.json")}
    (root / "checksums.sha256").write_text("".join(f"{lines[r]}  {r}\n" for r in sorted(lines)), encoding="utf-8")
    return root
