"""The AWS secret key never reaches anything procos writes or prints, on success paths and failures."""

from __future__ import annotations

import os
from pathlib import Path

from s3_support import procos, seeded_bundle


def test_a_unique_secret_key_never_appears_in_any_byte_written_or_printed(s3, tmp_path: Path):
    assert os.environ["AWS_SECRET_ACCESS_KEY"] == s3.secret  # every procos below signs its requests with it
    bundle = seeded_bundle(tmp_path / "work", count=300, dim=16)
    url = s3.url("env")
    remote = f"{url}/{bundle.name}"
    runs = [
        ("snapshot", "push", str(bundle), url, "--json"),
        ("snapshot", "push", str(bundle), url),
        ("snapshot", "list", url, "--json"),
        ("snapshot", "list", url),
        ("snapshot", "list", url, "--incomplete", "--json"),
        ("snapshot", "pull", remote, str(tmp_path / "pulled"), "--json"),
        ("snapshot", "import", remote, f"faiss:{tmp_path / 'target'}", "--json"),
        ("snapshot", "prune", url, "--keep-last", "1", "--dry-run", "--json"),
        ("snapshot", "prune", url, "--keep-last", "1", "--json"),
        ("snapshot", "abort-incomplete", url, "--json"),
        # failures, with tracebacks
        ("--debug", "snapshot", "push", str(bundle), "s3://no-such-bucket-procos/x"),
        ("--debug", "snapshot", "pull", f"{url}/knowledge_snapshot_20000101_000000", str(tmp_path / "none")),
        ("--debug", "snapshot", "push", str(bundle), url, "--retain-until", "2999-01-01"),
        ("--debug", "snapshot", "import", "s3://no-such-bucket-procos/knowledge_snapshot_20000101_000000",
         f"faiss:{tmp_path / 'target2'}"),
    ]
    printed = []
    for args in runs:
        proc = procos(*args)
        printed.append((args, proc.returncode, proc.stdout + proc.stderr))
    assert [code for _, code, _ in printed[:10]] == [0] * 10, printed
    assert all(code != 0 for _, code, _ in printed[10:]), printed
    assert any("Traceback" in text for _, _, text in printed[10:])  # --debug did print tracebacks
    for args, _, text in printed:
        assert s3.secret not in text, f"procos {' '.join(args)} printed the secret key"

    secret = s3.secret.encode()
    roots = [tmp_path, Path(os.environ["XDG_DATA_HOME"])]
    written = [p for root in roots for p in root.rglob("*") if p.is_file() and not p.is_symlink()]
    assert len(written) > 20
    for path in written:
        assert secret not in path.read_bytes(), f"{path} holds the secret key"
    for key in s3.keys():
        head = s3.client.head_object(Bucket=s3.bucket, Key=key)
        body = s3.client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        assert secret not in body and s3.secret not in repr(head.get("Metadata"))
