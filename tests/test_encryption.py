"""Encrypted bundles in the age v1 format, against the real age / age-keygen 1.1.1 binaries.

Round trips go both ways (ours -> stock ``age -d`` -> tar -> sha256sum; stock ``age -r`` /
``age -p`` -> our import), known-answer files made by the stock age are decrypted, and every kind
of damage (a wrong key, a flipped byte anywhere, truncation, appended bytes) must be a clean
error that leaves nothing behind. Keys and passphrases are searched for in every byte written.
"""

from __future__ import annotations

import io
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from crypto_support import AgeKey, age_key, needs_age
from snapshot_helpers import synthetic_bundle

from engine import api
from engine.crypto import (
    AgeKeys,
    AgeReader,
    AgeWriter,
    bech32,
    encode_identity,
    parse_recipient,
    recipient_of,
)
from engine.crypto import age as age_format
from engine.crypto import keys as keys_format
from engine.crypto.age_stream import CHUNK, TAG
from engine.errors import DecryptionFailed
from engine.snapshot import pack_bundle

pytestmark = needs_age
FIXTURES = Path(__file__).parent / "fixtures" / "age"
COUNT = 1500  # about 200 KB of archive: several 64 KiB chunks
PASSPHRASE = "correct horse battery staple, procos"


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("enc")
    return Path(synthetic_bundle(tmp / "snaps", tmp, count=COUNT, dims=32).path)


@pytest.fixture(scope="module")
def right(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    return age_key(tmp_path_factory.mktemp("keys"), "right.txt")


@pytest.fixture(scope="module")
def wrong(tmp_path_factory: pytest.TempPathFactory) -> AgeKey:
    return age_key(tmp_path_factory.mktemp("keys"), "wrong.txt")


@pytest.fixture(scope="module")
def encrypted(pristine: Path, right: AgeKey) -> Path:
    return Path(api.encrypt_snapshot(pristine, [right.recipient])["path"])


@pytest.fixture
def quiet_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where unpacking's temporary folders go during the test, to check that none is left."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def cli(*args: str) -> tuple[int, str]:
    from engine.cli import cli as group

    result = CliRunner().invoke(group, list(args))
    return result.exit_code, result.output


def stock_decrypt(path: Path, key: AgeKey) -> bytes:
    done = subprocess.run(["age", "-d", "-i", str(key.path), str(path)], capture_output=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def with_tty(args: list[str], passphrase: str, prompts: int) -> int:
    """Run a stock age command that reads a passphrase from its terminal, typing it at each prompt."""
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.execvp(args[0], args)
    seen, sent = b"", 0
    try:
        while True:
            ready, _, _ = select.select([fd], [], [], 60)
            if not ready:
                break
            try:
                data = os.read(fd, 1024)
            except OSError:
                break
            if not data:
                break
            seen += data
            if seen.lower().count(b"passphrase") > sent and sent < prompts:
                os.write(fd, passphrase.encode() + b"\r")
                sent += 1
    finally:
        os.close(fd)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


# --- keys and format ------------------------------------------------------------------------------


def test_bech32_matches_bip173_and_keys_match_age_keygen(right: AgeKey):
    assert bech32.decode("A12UEL5L") == ("a", b"")
    assert bech32.decode("abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw") == (
        "abcdef", bytes.fromhex("00443214c74254b635cf84653a56d7c675be77df"))
    for bad in ("A12UEL5l", "a12uel5m", "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxx"):
        with pytest.raises(bech32.Bech32Error):
            bech32.decode(bad)
    secret = keys_format.read_identities(right.path)[0]
    assert encode_identity(secret) == right.secret
    assert recipient_of(secret) == right.recipient
    assert len(parse_recipient(right.recipient)) == 32
    with pytest.raises(keys_format.AgeError, match="not an age"):
        parse_recipient(right.recipient[:-1] + ("q" if right.recipient[-1] != "q" else "p"))


def test_known_answer_files_of_the_stock_age_decrypt():
    plaintext = (FIXTURES / "plaintext.txt").read_bytes()
    keys = AgeKeys.from_files([FIXTURES / "identity.txt"])
    with open(FIXTURES / "x25519.age", "rb") as fh:
        assert AgeReader(fh, keys, "x25519.age").read() == plaintext
    with open(FIXTURES / "passphrase.age", "rb") as fh:
        assert AgeReader(fh, AgeKeys(passphrase=b"procos fixture passphrase"), "p.age").read() == plaintext
    with open(FIXTURES / "passphrase.age", "rb") as fh, pytest.raises(DecryptionFailed, match="wrong passphrase"):
        AgeReader(fh, AgeKeys(passphrase=b"procos fixture passphrase!"), "p.age")


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK, 2 * CHUNK + 7])
def test_chunk_boundaries_interoperate_both_ways(size: int, right: AgeKey, tmp_path: Path):
    data = os.urandom(size)
    ours = io.BytesIO()
    writer = AgeWriter(ours, [parse_recipient(right.recipient)])
    for start in range(0, size, 10_000):
        writer.write(data[start:start + 10_000])
    writer.finish()
    header = ours.getvalue().index(b"\n--- ") + 49  # "\n--- ", 43 base64 characters of the MAC, "\n"
    chunks = max(1, -(-size // CHUNK))
    assert len(ours.getvalue()) == header + 16 + size + chunks * TAG
    (tmp_path / "ours.age").write_bytes(ours.getvalue())
    assert stock_decrypt(tmp_path / "ours.age", right) == data
    subprocess.run(["age", "-r", right.recipient, "-o", str(tmp_path / "stock.age")], input=data, check=True,
                   timeout=60)
    with open(tmp_path / "stock.age", "rb") as fh:
        reader = AgeReader(fh, AgeKeys.from_files([right.path]), "stock.age")
        assert b"".join(iter(lambda: reader.read(7_000), b"")) == data
        assert reader.drain() == 0


def test_a_reader_that_stops_early_still_authenticates_the_end_when_drained(right: AgeKey):
    out = io.BytesIO()
    writer = AgeWriter(out, [parse_recipient(right.recipient)])
    writer.write(os.urandom(3 * CHUNK))
    writer.finish()
    data = bytearray(out.getvalue())
    data[-1] ^= 0x01  # the final chunk's tag
    keys = AgeKeys.from_files([right.path])
    reader = AgeReader(io.BytesIO(bytes(data)), keys, "early.age")
    assert len(reader.read(100)) == 100  # the first chunk is intact: reading it succeeds
    with pytest.raises(DecryptionFailed, match="chunk 2 of the payload does not authenticate"):
        reader.drain()
    intact = AgeReader(io.BytesIO(out.getvalue()), keys, "intact.age")
    intact.read(100)
    assert intact.drain() == 3 * CHUNK - 100


def test_unknown_stanzas_are_ignored_and_scrypt_must_be_alone(right: AgeKey, tmp_path: Path):
    from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

    file_key, nonce = os.urandom(16), os.urandom(16)
    stanzas = [age_format.Stanza("example.org/grease", ("x", "y"), os.urandom(70)),
               age_format._x25519_stanza(file_key, parse_recipient(right.recipient))]
    head = age_format.VERSION_LINE + b"".join(age_format._stanza_bytes(s) for s in stanzas) + b"---"
    mac = age_format.b64encode(age_format.header_mac(file_key, head)).encode()
    payload = ChaCha20Poly1305(age_format.hkdf(file_key, nonce, b"payload")).encrypt(bytes(11) + b"\x01", b"hi",
                                                                                     None)
    (tmp_path / "grease.age").write_bytes(head + b" " + mac + b"\n" + nonce + payload)
    assert stock_decrypt(tmp_path / "grease.age", right) == b"hi"
    with open(tmp_path / "grease.age", "rb") as fh:
        assert AgeReader(fh, AgeKeys.from_files([right.path]), "grease.age").read() == b"hi"
    mixed = [age_format._scrypt_stanza(file_key, b"pw", 10), stanzas[1]]
    head = age_format.VERSION_LINE + b"".join(age_format._stanza_bytes(s) for s in mixed) + b"---"
    (tmp_path / "mixed.age").write_bytes(head + b" " + age_format.b64encode(age_format.header_mac(file_key, head))
                                         .encode() + b"\n" + nonce + payload)
    with open(tmp_path / "mixed.age", "rb") as fh, pytest.raises(DecryptionFailed, match="only stanza"):
        AgeReader(fh, AgeKeys(identities=tuple(keys_format.read_identities(right.path)), passphrase=b"pw"), "m")
    armored = subprocess.run(["age", "-a", "-r", right.recipient], input=b"x", capture_output=True, check=True)
    with pytest.raises(DecryptionFailed, match="ASCII-armored"):
        AgeReader(io.BytesIO(armored.stdout), AgeKeys.from_files([right.path]), "armored.age")


# --- bundles: ours -> stock age, stock age -> ours ------------------------------------------------------


def test_an_encrypted_folder_decrypts_with_stock_age_into_a_bundle_sha256sum_accepts(pristine: Path, right: AgeKey,
                                                                                    tmp_path: Path):
    bundle = tmp_path / pristine.name
    shutil.copytree(pristine, bundle)
    code, out = cli("snapshot", "encrypt", str(bundle), "--recipient", right.recipient, "--json")
    assert code == 0, out
    result = json.loads(out)
    target = tmp_path / f"{bundle.name}.age"
    assert result["path"] == str(target) and result["recipients"] == [right.recipient]
    assert result["passphrase"] is False and result["bytes"] == target.stat().st_size
    assert not (tmp_path / f"{bundle.name}.tar.zst").exists()  # packed on the fly, never in the clear
    assert target.read_bytes().startswith(b"age-encryption.org/v1\n-> X25519 ")
    (tmp_path / "out.tar.zst").write_bytes(stock_decrypt(target, right))
    assert (tmp_path / "out.tar.zst").read_bytes() == pack_bundle(bundle).read_bytes()
    unpacked = tmp_path / "unpacked"
    unpacked.mkdir()
    subprocess.run(["tar", "--use-compress-program=unzstd", "-xf", str(tmp_path / "out.tar.zst")], cwd=unpacked,
                   check=True, timeout=60)
    check = subprocess.run(["sha256sum", "-c", "--strict", "checksums.sha256"], cwd=unpacked / bundle.name,
                           capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stdout + check.stderr


def test_every_recipient_can_decrypt_and_an_archive_encrypts_as_it_is(pristine: Path, right: AgeKey, wrong: AgeKey,
                                                                     tmp_path: Path):
    bundle = tmp_path / pristine.name
    shutil.copytree(pristine, bundle)
    archive = pack_bundle(bundle)
    result = api.encrypt_snapshot(archive, [right.recipient, wrong.recipient])
    assert result["path"] == f"{archive}.age"
    for key in (right, wrong):
        assert stock_decrypt(Path(result["path"]), key) == archive.read_bytes()


def test_a_bundle_encrypted_by_stock_age_imports_and_verifies(pristine: Path, right: AgeKey, tmp_path: Path,
                                                              monkeypatch):
    bundle = tmp_path / pristine.name
    shutil.copytree(pristine, bundle)
    archive = pack_bundle(bundle)
    sealed = tmp_path / f"{archive.name}.age"
    subprocess.run(["age", "-r", right.recipient, "-o", str(sealed), str(archive)], check=True, timeout=60)
    code, out = cli("snapshot", "import", str(sealed), f"faiss:{tmp_path / 'target'}", "--identity",
                    str(right.path), "--json")
    assert code == 0, out
    assert json.loads(out)["imported"] == COUNT
    monkeypatch.setenv("PROCOS_AGE_IDENTITY", str(right.path))
    code, out = cli("snapshot", "verify", str(sealed), "--json")
    assert code == 0, out
    assert json.loads(out)["manifest"]["record_count"] == COUNT


def test_passphrase_round_trips_ours_to_ours_and_with_the_stock_age_on_a_terminal(pristine: Path, tmp_path: Path):
    bundle = tmp_path / pristine.name
    shutil.copytree(pristine, bundle)
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE + "\n")
    code, out = cli("snapshot", "encrypt", str(bundle), "--passphrase-file", str(secret), "--json")
    assert code == 0, out
    sealed = Path(json.loads(out)["path"])
    assert b"-> scrypt " in sealed.read_bytes()[:100]
    code, out = cli("snapshot", "import", str(sealed), f"faiss:{tmp_path / 'target'}", "--passphrase-file",
                    str(secret), "--json")
    assert code == 0, out
    assert json.loads(out)["imported"] == COUNT
    # ours -> the stock age, which reads the passphrase from its terminal only
    assert with_tty(["age", "-d", "-o", str(tmp_path / "stock.tar.zst"), str(sealed)], PASSPHRASE, 1) == 0
    assert (tmp_path / "stock.tar.zst").read_bytes() == pack_bundle(bundle).read_bytes()
    # the stock age -p -> ours
    by_stock = tmp_path / "by_stock.tar.zst.age"
    assert with_tty(["age", "-p", "-o", str(by_stock), str(tmp_path / "stock.tar.zst")], PASSPHRASE, 2) == 0
    code, out = cli("snapshot", "verify", str(by_stock), "--passphrase-file", str(secret), "--json")
    assert code == 0, out


# --- damage and wrong keys ---------------------------------------------------------------------------


def _layout(data: bytes) -> tuple[int, int]:
    """(offset of the payload's first chunk, number of chunks) of an age file."""
    start = data.index(b"\n--- ") + 49 + 16
    return start, -(-(len(data) - start) // (CHUNK + TAG))


def _flip(data: bytearray, at: int) -> None:
    data[at] ^= 0x01


def damaged(source: bytes, case: str) -> bytes:
    data = bytearray(source)
    start, chunks = _layout(source)
    if case == "header_stanza_byte":
        line = data.index(b"\n", data.index(b"-> X25519")) + 5  # inside the stanza's body line
        data[line] = ord("A") if data[line] != ord("A") else ord("B")
    elif case == "header_mac_byte":
        at = data.index(b"\n--- ") + 10
        data[at] = ord("A") if data[at] != ord("A") else ord("B")
    elif case == "nonce_byte":
        _flip(data, start - 3)
    elif case == "first_chunk_byte":
        _flip(data, start + 1000)
    elif case == "middle_chunk_byte":
        _flip(data, start + (CHUNK + TAG) + 5)
    elif case == "last_chunk_tag_byte":
        _flip(data, len(data) - 1)
    elif case == "truncated_by_one_byte":
        del data[-1]
    elif case == "truncated_at_a_chunk_boundary":
        del data[start + (chunks - 1) * (CHUNK + TAG):]
    elif case == "truncated_inside_the_header":
        del data[data.index(b"\n--- ") + 3:]
    elif case == "one_byte_appended":
        data += b"\x00"
    elif case == "a_chunk_appended":
        data += os.urandom(CHUNK + TAG)
    else:
        raise AssertionError(case)
    assert chunks >= 3 and bytes(data) != source
    return bytes(data)


DAMAGE = ["header_stanza_byte", "header_mac_byte", "nonce_byte", "first_chunk_byte", "middle_chunk_byte",
          "last_chunk_tag_byte", "truncated_by_one_byte", "truncated_at_a_chunk_boundary",
          "truncated_inside_the_header", "one_byte_appended", "a_chunk_appended"]


def assert_refused_cleanly(code: int, out: str, sealed: Path, target: Path, quiet_tmp: Path) -> None:
    assert code == 3, out
    errors = [line for line in out.splitlines() if line.startswith("Error: ")]
    assert len(errors) == 1 and str(sealed) in errors[0] and "Traceback" not in out, out
    assert not target.exists(), "the target store was created"
    assert list(quiet_tmp.iterdir()) == [], "a temporary folder was left behind"


@pytest.mark.parametrize("case", DAMAGE)
def test_damaged_ciphertext_is_a_clean_error_that_writes_nothing(encrypted: Path, right: AgeKey, case: str,
                                                                 tmp_path: Path, quiet_tmp: Path):
    sealed = tmp_path / encrypted.name
    sealed.write_bytes(damaged(encrypted.read_bytes(), case))
    target = tmp_path / "target"
    code, out = cli("snapshot", "import", str(sealed), f"faiss:{target}", "--identity", str(right.path))
    assert_refused_cleanly(code, out, sealed, target, quiet_tmp)
    assert "cannot decrypt" in out
    code, out = cli("snapshot", "verify", str(sealed), "--identity", str(right.path), "--json")
    assert code == 3 and "cannot decrypt" in out
    stock = subprocess.run(["age", "-d", "-i", str(right.path), "-o", os.devnull, str(sealed)], capture_output=True)
    assert stock.returncode != 0  # the stock age agrees the file is damaged


@pytest.mark.parametrize("keys", ["wrong_identity", "passphrase_instead", "no_key"])
def test_a_wrong_or_missing_key_is_a_clean_error_that_writes_nothing(encrypted: Path, wrong: AgeKey, keys: str,
                                                                     tmp_path: Path, quiet_tmp: Path):
    secret = tmp_path / "passphrase.txt"
    secret.write_text(PASSPHRASE)
    given = {"wrong_identity": ["--identity", str(wrong.path)], "passphrase_instead": ["--passphrase-file", str(secret)],
             "no_key": []}[keys]
    target = tmp_path / "target"
    code, out = cli("snapshot", "import", str(encrypted), f"faiss:{target}", *given)
    assert_refused_cleanly(code, out, encrypted, target, quiet_tmp)
    expected = {"wrong_identity": "wrong key", "passphrase_instead": "no identity was given",
                "no_key": "no key was given"}[keys]
    assert expected in out


def test_encrypt_refuses_bad_arguments(pristine: Path, right: AgeKey, tmp_path: Path):
    secret = tmp_path / "p.txt"
    secret.write_text("x")
    code, out = cli("snapshot", "encrypt", str(pristine), "--recipient", right.recipient, "--passphrase-file",
                    str(secret))
    assert code == 1 and "not both" in out
    code, out = cli("snapshot", "encrypt", str(pristine))
    assert code == 1 and "--recipient" in out
    code, out = cli("snapshot", "encrypt", str(pristine), "--recipient", "age1notakey")
    assert code == 1 and "not an age public key" in out
    (tmp_path / "empty").mkdir()
    code, out = cli("snapshot", "encrypt", str(tmp_path / "empty"), "--recipient", right.recipient)
    assert code == 1 and "not a finished bundle" in out
    assert not list(tmp_path.glob("*.age")) and not list(pristine.parent.glob(".*tmp-*"))


# --- secrets stay secret --------------------------------------------------------------------------------


def _everything_under(*folders: Path) -> Iterator[tuple[Path, bytes]]:
    for folder in folders:
        for path in folder.rglob("*"):
            if path.is_file() and not path.is_symlink():
                yield path, path.read_bytes()


def test_keys_and_passphrases_never_reach_output_state_or_bundles(pristine: Path, right: AgeKey, wrong: AgeKey,
                                                                  tmp_path: Path):
    home, out_dir = tmp_path / "home", tmp_path / "out"
    bundle = out_dir / pristine.name
    shutil.copytree(pristine, bundle)
    secret = tmp_path / "secret" / "passphrase.txt"
    secret.parent.mkdir()
    secret.write_text(PASSPHRASE + "\n")
    wrong_secret = tmp_path / "secret" / "wrong.txt"
    wrong_secret.write_text(PASSPHRASE + " but wrong\n")
    env = {**os.environ, "PROCOS_HOME": str(home), "PROCOS_ENV": "dev"}

    def procos(*args: str) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, env=env,
                              timeout=300)

    sealed = Path(f"{bundle}.age")
    runs = [procos("snapshot", "encrypt", str(bundle), "--passphrase-file", str(secret), "--json"),
            procos("snapshot", "import", str(sealed), f"faiss:{out_dir / 'pp'}", "--passphrase-file", str(secret)),
            procos("--debug", "snapshot", "import", str(sealed), f"faiss:{out_dir / 'x'}", "--passphrase-file",
                   str(wrong_secret)),
            procos("snapshot", "encrypt", str(bundle), "--recipient", right.recipient, "--json"),
            procos("snapshot", "import", str(sealed), f"faiss:{out_dir / 'id'}", "--identity", str(right.path)),
            procos("--debug", "snapshot", "import", str(sealed), f"faiss:{out_dir / 'y'}", "--identity",
                   str(wrong.path)),
            procos("snapshot", "verify", str(sealed), "--identity", str(right.path), "--json")]
    assert [r.returncode for r in runs] == [0, 0, 3, 0, 0, 3, 0], [r.stderr[-400:] for r in runs]
    raw_keys = [keys_format.read_identities(k.path)[0] for k in (right, wrong)]
    needles = [PASSPHRASE.encode(), right.secret.encode(), right.secret.lower().encode(), wrong.secret.encode(),
               *raw_keys, *(k.hex().encode() for k in raw_keys)]
    haystacks = [(Path(f"output of run {i}"), r.stdout + r.stderr) for i, r in enumerate(runs)]
    haystacks += list(_everything_under(home, out_dir))
    assert len(haystacks) > len(runs)  # the bundle, the targets and the encrypted file were searched
    for where, data in haystacks:
        for needle in needles:
            assert needle not in data, f"a secret appears in {where}"
