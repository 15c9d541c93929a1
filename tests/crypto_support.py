"""Real gpg keyrings and age keys for the signature and encryption tests (throwaway, in temporary folders)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg (apt-get install gnupg)")
needs_age = pytest.mark.skipif(shutil.which("age") is None or shutil.which("age-keygen") is None,
                               reason="needs age and age-keygen (apt-get install age)")


@dataclass(frozen=True)
class Keyring:
    """A GNUPGHOME with secret keys: ``signer`` and ``other`` are primary fingerprints."""

    home: Path
    signer: str
    other: str

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "GNUPGHOME": str(self.home), **extra}


def gpg(home: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["gpg", "--batch", "--homedir", str(home), *args], capture_output=True, text=True,
                          check=check, timeout=60)


def new_key(home: Path, uid: str) -> str:
    """Generate an ed25519 signing key without passphrase in ``home``; return its fingerprint."""
    gpg(home, "--passphrase", "", "--quick-gen-key", uid, "ed25519", "sign", "never")
    out = gpg(home, "--list-keys", "--with-colons", uid).stdout
    return next(line.split(":")[9] for line in out.splitlines() if line.startswith("fpr:"))


def new_home() -> Path:
    """A short GNUPGHOME path (gpg-agent's socket path must stay short), mode 0700."""
    return Path(tempfile.mkdtemp(prefix="procos-gpg-"))


def drop_home(home: Path) -> None:
    subprocess.run(["gpgconf", "--homedir", str(home), "--kill", "gpg-agent"], capture_output=True, timeout=30)
    shutil.rmtree(home, ignore_errors=True)


def make_keyring() -> Iterator[Keyring]:
    """A keyring with two keys (for a module-scoped fixture: ``yield from make_keyring()``); removed afterwards."""
    if shutil.which("gpg") is None:
        pytest.skip("needs gpg")
    home = new_home()
    try:
        yield Keyring(home, new_key(home, "Signer <signer@example.org>"), new_key(home, "Other <other@example.org>"))
    finally:
        drop_home(home)


@dataclass(frozen=True)
class AgeKey:
    """An identity file written by the stock age-keygen, its recipient and its secret line."""

    path: Path
    recipient: str
    secret: str


def age_key(folder: Path, name: str = "key.txt") -> AgeKey:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    subprocess.run(["age-keygen", "-o", str(path)], capture_output=True, check=True, timeout=30)
    recipient = subprocess.run(["age-keygen", "-y", str(path)], capture_output=True, text=True, check=True,
                               timeout=30).stdout.strip()
    secret = next(line for line in path.read_text().splitlines() if line.startswith("AGE-SECRET-KEY-"))
    return AgeKey(path, recipient, secret)
