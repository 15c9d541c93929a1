"""Signed bundles: detached OpenPGP signatures by the real gpg, checked against trusted fingerprints only.

Each test tries what an attacker or a careless operator would: change checksums.sha256 after
signing, replace the signature with garbage or with a signed message, sign with a key nobody
trusts, revoke the trusted key, import unsigned bundles under --require-signature and in prod.
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import zstandard
from click.testing import CliRunner
from crypto_support import Keyring, drop_home, gpg, make_keyring, needs_gpg, new_home, new_key
from snapshot_helpers import synthetic_bundle

from engine import api
from engine.errors import BadSignature, BundleInvalid, ConfigError, SignatureRequired, SigningFailed
from engine.snapshot import pack_bundle

pytestmark = needs_gpg
COUNT = 120


@pytest.fixture(scope="module")
def keyring() -> Iterator[Keyring]:
    yield from make_keyring()


@pytest.fixture
def use_keyring(keyring: Keyring, monkeypatch: pytest.MonkeyPatch) -> Keyring:
    """The keyring as this process's GNUPGHOME, nothing trusted yet."""
    monkeypatch.setenv("GNUPGHOME", str(keyring.home))
    monkeypatch.delenv("PROCOS_TRUSTED_KEYS", raising=False)
    return keyring


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("signed")
    return Path(synthetic_bundle(tmp / "snaps", tmp, count=COUNT, dims=8).path)


@pytest.fixture
def bundle(pristine: Path, tmp_path: Path) -> Path:
    """A fresh unsigned copy of the bundle."""
    copy = tmp_path / "snaps" / pristine.name
    shutil.copytree(pristine, copy)
    return copy


@pytest.fixture
def signed(bundle: Path, use_keyring: Keyring) -> Path:
    api.sign_snapshot(bundle, use_keyring.signer)
    return bundle


def cli(*args: str) -> tuple[int, str]:
    from engine.cli import cli as group

    result = CliRunner().invoke(group, list(args))
    return result.exit_code, result.output


def verify_json(path: Path, *extra: str) -> tuple[int, dict]:
    code, out = cli("snapshot", "verify", str(path), "--json", *extra)
    return code, json.loads(out)


def procos(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True, env=env,
                          timeout=300)


# --- signing -------------------------------------------------------------------------------------


def test_sign_writes_a_detached_armored_signature_that_gpg_verifies_by_hand(bundle: Path, use_keyring: Keyring):
    code, out = cli("snapshot", "sign", str(bundle), "--key", "signer@example.org", "--json")
    assert code == 0, out
    result = json.loads(out)
    asc = bundle / "checksums.sha256.asc"
    assert result["signature"] == str(asc) and result["fingerprint"] == use_keyring.signer
    assert asc.read_text().startswith("-----BEGIN PGP SIGNATURE-----")
    by_hand = subprocess.run(["gpg", "--batch", "--verify", "checksums.sha256.asc", "checksums.sha256"],
                             cwd=bundle, capture_output=True, text=True, env=use_keyring.env())
    assert by_hand.returncode == 0 and "Good signature" in by_hand.stderr, by_hand.stderr
    assert not [p.name for p in bundle.iterdir() if ".tmp-" in p.name]


def test_signing_changes_neither_checksums_nor_content_hash(bundle: Path, use_keyring: Keyring):
    before = {p: (bundle / p).read_bytes() for p in ("checksums.sha256", "manifest.json")}
    content_hash = api.verify_snapshot(bundle)["manifest"]["content_hash"]
    result = api.sign_snapshot(bundle, use_keyring.signer)
    assert result["content_hash"] == content_hash
    assert {p: (bundle / p).read_bytes() for p in before} == before
    report = api.verify_snapshot(bundle)
    assert report["ok"] and report["errors"] == []  # the .asc is not an unlisted file
    assert report["manifest"]["content_hash"] == content_hash


def test_signing_with_an_unknown_key_fails_cleanly_and_leaves_no_file(bundle: Path, use_keyring: Keyring):
    with pytest.raises(SigningFailed, match="no usable secret key 'nobody@example.org'") as info:
        api.sign_snapshot(bundle, "nobody@example.org")
    assert info.value.hint and "gpg --list-secret-keys" in info.value.hint
    assert not (bundle / "checksums.sha256.asc").exists()
    assert not [p.name for p in bundle.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_a_damaged_bundle_is_not_signed(bundle: Path, use_keyring: Keyring):
    (bundle / "manifest.json").write_bytes((bundle / "manifest.json").read_bytes().replace(b'"', b"'", 1))
    with pytest.raises(BundleInvalid, match="it was not signed"):
        api.sign_snapshot(bundle, use_keyring.signer)
    assert not (bundle / "checksums.sha256.asc").exists()


def test_sign_file_signs_any_file_for_drill_reports(tmp_path: Path, use_keyring: Keyring, monkeypatch):
    report = tmp_path / "report.json"
    report.write_text('{"passed": true}\n')
    monkeypatch.setenv("PROCOS_SIGNING_KEY", use_keyring.signer)
    result = api.sign_file(report)
    assert result == {"signature": str(tmp_path / "report.json.asc"), "fingerprint": use_keyring.signer}
    assert gpg(use_keyring.home, "--verify", str(tmp_path / "report.json.asc"), str(report)).returncode == 0
    assert api.signature_status(report)["status"] == "untrusted"
    assert api.signature_status(report, trusted_keys=[use_keyring.signer]) == {
        "status": "good", "fingerprint": use_keyring.signer}
    report.write_text('{"passed": false}\n')
    assert api.signature_status(report, trusted_keys=[use_keyring.signer])["status"] == "bad"


# --- verify: the four statuses ---------------------------------------------------------------------


def test_verify_reports_missing_untrusted_and_good(bundle: Path, use_keyring: Keyring, monkeypatch):
    code, report = verify_json(bundle)
    assert code == 0 and report["signature"] == {"status": "missing", "fingerprint": None}
    api.sign_snapshot(bundle, use_keyring.signer)
    code, report = verify_json(bundle)
    assert code == 0 and report["ok"]
    assert report["signature"] == {"status": "untrusted", "fingerprint": use_keyring.signer}
    code, report = verify_json(bundle, "--trusted-key", use_keyring.other)
    assert report["signature"]["status"] == "untrusted"  # trusting another key does not help
    code, report = verify_json(bundle, "--trusted-key", use_keyring.other, "--trusted-key", use_keyring.signer)
    assert code == 0 and report["signature"] == {"status": "good", "fingerprint": use_keyring.signer}
    spaced = " ".join(use_keyring.signer[i:i + 4] for i in range(0, 40, 4)).lower()
    monkeypatch.setenv("PROCOS_TRUSTED_KEYS", f"{use_keyring.other}, {spaced}")
    code, report = verify_json(bundle)
    assert code == 0 and report["signature"] == {"status": "good", "fingerprint": use_keyring.signer}


def test_a_signer_missing_from_the_keyring_is_untrusted_even_when_listed(signed: Path, keyring: Keyring,
                                                                        monkeypatch):
    empty = new_home()
    try:
        monkeypatch.setenv("GNUPGHOME", str(empty))
        code, report = verify_json(signed, "--trusted-key", keyring.signer)
    finally:
        drop_home(empty)
    assert code == 0 and report["signature"] == {"status": "untrusted", "fingerprint": keyring.signer}


def test_a_revoked_trusted_key_is_untrusted(bundle: Path, monkeypatch):
    home = new_home()
    try:
        fpr = new_key(home, "Soon Revoked <revoked@example.org>")
        monkeypatch.setenv("GNUPGHOME", str(home))
        api.sign_snapshot(bundle, fpr)
        assert verify_json(bundle, "--trusted-key", fpr)[1]["signature"]["status"] == "good"
        cert = (home / "openpgp-revocs.d" / f"{fpr}.rev").read_text().replace(":-----BEGIN", "-----BEGIN")
        (home / "revoke.asc").write_text(cert)
        gpg(home, "--import", str(home / "revoke.asc"))
        code, report = verify_json(bundle, "--trusted-key", fpr)
    finally:
        drop_home(home)
    assert code == 0 and report["signature"] == {"status": "untrusted", "fingerprint": fpr}


def test_checksums_changed_after_signing_is_a_bad_signature_and_fails_verification(signed: Path,
                                                                                  use_keyring: Keyring):
    path = signed / "checksums.sha256"
    data = bytearray(path.read_bytes())
    data[10] = ord("0") if data[10] != ord("0") else ord("1")  # one hex digit of the first hash
    path.write_bytes(bytes(data))
    code, report = verify_json(signed, "--trusted-key", use_keyring.signer)
    assert code == 3 and report["ok"] is False
    assert report["signature"]["status"] == "bad"
    assert "checksums.sha256.asc" in {e["path"] for e in report["errors"]}
    with pytest.raises(BadSignature) as info:  # without --require-signature too: a bad signature is a failure
        api.import_snapshot(signed, f"faiss:{signed.parent / 'target'}", trusted_keys=[use_keyring.signer])
    assert "checksums.sha256.asc" in {f["path"] for f in info.value.findings}
    code, out = cli("snapshot", "import", str(signed), f"faiss:{signed.parent / 'target'}")
    assert code == 3 and "failed verification" in out
    assert not (signed.parent / "target").exists()


@pytest.mark.parametrize("damage", ["garbage", "signed_message", "flipped_byte"])
def test_a_damaged_or_substituted_signature_is_bad(signed: Path, use_keyring: Keyring, damage: str):
    asc = signed / "checksums.sha256.asc"
    if damage == "garbage":
        asc.write_text("-----BEGIN PGP SIGNATURE-----\n\nnot a signature\n-----END PGP SIGNATURE-----\n")
    elif damage == "signed_message":  # an opaque signed message whose content is not checksums.sha256
        other = signed.parent / "other.txt"
        other.write_text("anything\n")
        gpg(use_keyring.home, "--yes", "--armor", "--sign", "--output", str(asc), str(other))
    else:  # one base64 character in the middle of the armored signature
        lines = asc.read_text().split("\n")
        body = lines.index("") + 1
        middle = len(lines[body]) // 2
        swapped = "B" if lines[body][middle] != "B" else "C"
        lines[body] = lines[body][:middle] + swapped + lines[body][middle + 1:]
        asc.write_text("\n".join(lines))
    code, report = verify_json(signed, "--trusted-key", use_keyring.signer)
    assert code == 3 and report["signature"]["status"] == "bad", report["signature"]
    assert "checksums.sha256.asc" in {e["path"] for e in report["errors"]}


def test_the_signature_itself_may_not_be_listed_in_checksums(signed: Path, use_keyring: Keyring):
    import hashlib

    digest = hashlib.sha256((signed / "checksums.sha256.asc").read_bytes()).hexdigest()
    with open(signed / "checksums.sha256", "a") as fh:
        fh.write(f"{digest}  checksums.sha256.asc\n")
    code, report = verify_json(signed)
    assert code == 3
    assert any(e["path"] == "checksums.sha256.asc" and "listed" in e["problem"] for e in report["errors"])


def test_a_trusted_key_that_is_not_a_fingerprint_is_refused(signed: Path, monkeypatch):
    with pytest.raises(ConfigError, match="not an OpenPGP fingerprint"):
        api.verify_snapshot(signed, trusted_keys=["signer@example.org"])
    monkeypatch.setenv("PROCOS_TRUSTED_KEYS", "DEADBEEFDEADBEEF")
    with pytest.raises(ConfigError, match="PROCOS_TRUSTED_KEYS"):
        api.verify_snapshot(signed)


# --- pack -----------------------------------------------------------------------------------------


def test_pack_carries_the_signature_and_signing_repacks_an_existing_archive(bundle: Path, use_keyring: Keyring):
    unsigned_archive = pack_bundle(bundle).read_bytes()
    result = api.sign_snapshot(bundle, use_keyring.signer)
    archive = Path(result["archive"])
    assert archive == bundle.parent / f"{bundle.name}.tar.zst" and archive.read_bytes() != unsigned_archive
    raw = zstandard.ZstdDecompressor().decompress(archive.read_bytes(), max_output_size=1 << 28)
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        asc = tar.extractfile(f"{bundle.name}/checksums.sha256.asc").read()
    assert asc == (bundle / "checksums.sha256.asc").read_bytes()
    assert pack_bundle(bundle).read_bytes() == archive.read_bytes()  # still reproducible
    code, report = verify_json(archive, "--trusted-key", use_keyring.signer)
    assert code == 0 and report["signature"] == {"status": "good", "fingerprint": use_keyring.signer}


# --- import -----------------------------------------------------------------------------------------


def test_require_signature_imports_a_bundle_signed_by_a_trusted_key(signed: Path, use_keyring: Keyring):
    target = signed.parent / "target"
    code, out = cli("snapshot", "import", str(signed), f"faiss:{target}", "--require-signature",
                    "--trusted-key", use_keyring.signer, "--json")
    assert code == 0, out
    assert json.loads(out)["imported"] == COUNT


@pytest.mark.parametrize("case", ["unsigned", "badly_signed", "untrusted_signer"])
def test_require_signature_refuses_before_anything_exists(bundle: Path, use_keyring: Keyring, case: str):
    if case != "unsigned":
        api.sign_snapshot(bundle, use_keyring.other if case == "untrusted_signer" else use_keyring.signer)
    if case == "badly_signed":
        (bundle / "checksums.sha256.asc").write_text((bundle / "checksums.sha256").read_text())
    target = bundle.parent / "target"
    for dry_run in ([], ["--dry-run"]):
        code, out = cli("snapshot", "import", str(bundle), f"faiss:{target}", "--require-signature",
                        "--trusted-key", use_keyring.signer, *dry_run)
        assert code == 3, out
        assert not target.exists()
    expected = {"unsigned": "is not signed", "badly_signed": "checksums.sha256.asc",
                "untrusted_signer": f"is signed by {use_keyring.other}, which is not a trusted key"}[case]
    assert expected in out and "Try: " in out
    error = SignatureRequired if case != "badly_signed" else BadSignature
    with pytest.raises(error):
        api.load_vectors(bundle, f"faiss:{target}", require_signature=True, trusted_keys=[use_keyring.signer])
    assert not target.exists()


def test_every_bundle_of_a_chain_needs_a_good_signature(tmp_path: Path, use_keyring: Keyring):
    source = f"faiss:{tmp_path / 'source'}?index=flat"
    api.seed_store(source, count=60, dim=8, artifacts=False)
    full = api.export_snapshot(source, tmp_path / "snaps")["path"]
    api.seed_store(source, count=70, dim=8, artifacts=False)
    delta = api.export_delta(source, full, tmp_path / "snaps")["path"]
    api.sign_snapshot(full, use_keyring.signer)
    target = tmp_path / "target"
    with pytest.raises(SignatureRequired, match=f"{delta}.* is not signed"):
        api.import_snapshot([full, delta], f"faiss:{target}", require_signature=True,
                            trusted_keys=[use_keyring.signer])
    assert not target.exists()
    api.sign_snapshot(delta, use_keyring.signer)
    result = api.import_snapshot([full, delta], f"faiss:{target}", require_signature=True,
                                 trusted_keys=[use_keyring.signer])
    assert result["imported"] == 70


def test_prod_refuses_an_unsigned_import_and_accepts_a_trusted_one(bundle: Path, keyring: Keyring, tmp_path: Path):
    env = keyring.env(PROCOS_ENV="prod", PROCOS_HOME=str(tmp_path / "home"))
    env.pop("PROCOS_TRUSTED_KEYS", None)
    target = tmp_path / "target"
    refused = procos("snapshot", "import", str(bundle), f"faiss:{target}", "--json", env=env)
    assert refused.returncode == 3, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and "is not signed" in lines[0] and "prod" in lines[0]
    assert lines[1].startswith("Try: ") and "procos snapshot sign" in lines[1] and "PROCOS_TRUSTED_KEYS" in lines[1]
    assert refused.stdout == "" and not target.exists()
    signed = procos("snapshot", "sign", str(bundle), "--key", keyring.signer, "--json", env=env)
    assert signed.returncode == 0, signed.stderr
    untrusted = procos("snapshot", "import", str(bundle), f"faiss:{target}", env=env)
    assert untrusted.returncode == 3 and "not a trusted key" in untrusted.stderr and not target.exists()
    accepted = procos("snapshot", "import", str(bundle), f"faiss:{target}", "--json",
                      env={**env, "PROCOS_TRUSTED_KEYS": keyring.signer})
    assert accepted.returncode == 0, accepted.stderr
    assert json.loads(accepted.stdout)["imported"] == COUNT


def test_prod_requires_signatures_on_every_import_path_of_the_api(bundle: Path, use_keyring: Keyring, monkeypatch,
                                                                  tmp_path: Path):
    from engine.repository import open_repository
    from engine.snapshot import import_snapshot as library_import

    monkeypatch.setenv("PROCOS_ENV", "prod")
    target = f"faiss:{tmp_path / 'target'}"
    for call in (lambda: api.load_vectors(bundle, target),
                 lambda: api.import_snapshot(bundle, target, dry_run=True),
                 lambda: api.import_chain([bundle], target)):
        with pytest.raises(SignatureRequired, match="the deployment environment is prod"):
            call()
    assert not (tmp_path / "target").exists()
    monkeypatch.setenv("PROCOS_ENV", "dev")
    repo = open_repository(f"faiss:{tmp_path / 'existing'}", dimensions=8, metric="cosine")
    try:
        monkeypatch.setenv("PROCOS_ENV", "prod")
        with pytest.raises(SignatureRequired):
            library_import(repo, bundle)  # the library under the front door fails closed too
        with pytest.raises(SignatureRequired):
            api.register_artifacts(bundle, f"faiss:{tmp_path / 'existing'}")
        assert repo.count() == 0 and repo.artifacts.list() == []
    finally:
        repo.close()


def test_an_expired_key_or_a_missing_verdict_is_never_good():
    """gpg's status lines for a signature by an expired key (captured from gpg 2.2 with --faked-system-time)."""
    from engine.snapshot.signature import classify

    fpr = "106DF6465EAAD8F15D33D65EE0F68B2A25F1549C"
    expired = [["NEWSIG"], ["KEY_CONSIDERED", fpr, "0"], ["KEYEXPIRED", "1796248193"],
               ["EXPKEYSIG", "E0F68B2A25F1549C", "Exp", "<e@example.org>"],
               ["VALIDSIG", fpr, "2026-12-01", "1796161793", "0", "4", "0", "22", "8", "00", fpr]]
    assert classify(expired, 0, [fpr]) == {"status": "untrusted", "fingerprint": fpr}
    good = [["NEWSIG"], ["GOODSIG", "E0F68B2A25F1549C", "Exp"], expired[-1]]
    assert classify(good, 0, [fpr]) == {"status": "good", "fingerprint": fpr}
    assert classify(good, 1, [fpr])["status"] == "bad"  # gpg's exit code disagrees: not good
    assert classify(good[:2], 0, [fpr])["status"] == "bad"  # GOODSIG without VALIDSIG
    assert classify([["NODATA", "1"]], 2, [fpr]) == {"status": "bad", "fingerprint": None}
    assert classify([*good, ["PLAINTEXT", "62", "0"]], 0, [fpr])["status"] == "bad"
