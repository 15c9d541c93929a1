"""Detached OpenPGP signatures made and checked by the system ``gpg`` (the keyring of ``$GNUPGHOME``).

A bundle is signed by signing its ``checksums.sha256`` into ``checksums.sha256.asc`` (ASCII armor,
detached), so ``gpg --verify checksums.sha256.asc checksums.sha256`` works by hand and the
signature covers every listed file through its hash. Any other file (a DR drill report) is signed
the same way into ``<file>.asc``.

Checking maps gpg's machine-readable status lines (``--status-fd``) to one of:

- ``good``: the signature verifies and the signing key's primary fingerprint is trusted
  (``PROCOS_TRUSTED_KEYS`` / ``trusted_keys`` in config.yaml, plus any given explicitly);
- ``untrusted``: it verifies, but by a key that is not trusted, or revoked or expired, or the key
  is not in the keyring, so nothing can be said about it;
- ``bad``: it does not verify (the file changed, the ``.asc`` is damaged, not a detached signature);
- ``missing``: there is no ``.asc``.

gpg's own web of trust (TRUST_* lines) plays no part: only the fingerprint list decides.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from engine.errors import BundleError, ConfigError, SigningFailed

from . import layout

GPG_TIMEOUT = 120
_FPR = re.compile(r"^(?:[0-9A-F]{40}|[0-9A-F]{64})$")
SIGN_HINT = ("list the secret keys with gpg --list-secret-keys; make one with gpg --batch --passphrase '' "
             "--quick-gen-key 'Name <you@example.org>' ed25519 sign never (GNUPGHOME selects the keyring)")
TRUST_HINT = ("trust the signer by its fingerprint: PROCOS_TRUSTED_KEYS=FPR[,FPR...] or --trusted-key FPR "
              "(gpg --fingerprint KEY shows it)")


def normalize_fingerprint(text: str, where: str = "a trusted key") -> str:
    """An OpenPGP fingerprint as 40 (or 64) uppercase hex digits; spaces and a ``0x`` prefix are dropped."""
    value = re.sub(r"\s+", "", str(text)).upper()
    value = value[2:] if value.startswith("0X") else value
    if not _FPR.match(value):
        raise ConfigError(f"{where} {text!r} is not an OpenPGP fingerprint (40 hex digits)",
                          hint="give full fingerprints, not key ids or names: gpg --fingerprint KEY shows them")
    return value


def trusted_fingerprints(extra: Iterable[str] | None = None) -> tuple[str, ...]:
    """The trusted signers: the configured ``trusted_keys`` (``PROCOS_TRUSTED_KEYS``) plus ``extra``."""
    from engine.config import load_config

    configured = [normalize_fingerprint(k, "PROCOS_TRUSTED_KEYS entry") for k in load_config().get("trusted_keys")]
    given = [normalize_fingerprint(k, "--trusted-key") for k in (extra or [])]
    return tuple(dict.fromkeys(configured + given))


def _gpg(args: list[str], action: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("gpg")
    if exe is None:
        raise BundleError(f"cannot {action}: gpg is not installed",
                          hint="install GnuPG (apt-get install gnupg; make install does it)")
    try:
        return subprocess.run([exe, "--batch", "--no-tty", "--status-fd", "1", "--no-auto-key-retrieve", *args],
                              stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=GPG_TIMEOUT)
    except subprocess.TimeoutExpired:
        raise BundleError(f"cannot {action}: gpg did not finish within {GPG_TIMEOUT} s") from None


def _status(stdout: str) -> list[list[str]]:
    return [line.split()[1:] for line in stdout.splitlines() if line.startswith("[GNUPG:] ") and line.split()[1:]]


def _fpr_or_none(value: str | None) -> str | None:
    return value.upper() if value and _FPR.match(value.upper()) else None


def classify(status: list[list[str]], returncode: int, trusted: Iterable[str]) -> dict[str, Any]:
    """``{"status", "fingerprint"}`` from gpg --verify status lines (each split into words)."""
    words = {line[0] for line in status}
    valid = [_fpr_or_none(line[-1] if len(line) >= 11 else line[1]) for line in status
             if line[0] == "VALIDSIG" and len(line) >= 2]
    fingerprint = next((f for f in valid if f), None)
    if "PLAINTEXT" in words or "BADSIG" in words:  # PLAINTEXT: a signed message, not a detached signature
        return {"status": "bad", "fingerprint": fingerprint}
    errsig = [line for line in status if line[0] == "ERRSIG"]
    if errsig:
        missing_key = "NO_PUBKEY" in words and all(len(e) > 6 and e[6] == "9" for e in errsig)
        issuer = _fpr_or_none(errsig[0][7]) if len(errsig[0]) > 7 else None
        return {"status": "untrusted" if missing_key else "bad", "fingerprint": issuer}
    if not valid or returncode != 0 or None in valid or words.isdisjoint({"GOODSIG", "EXPSIG", "EXPKEYSIG",
                                                                         "REVKEYSIG"}):
        return {"status": "bad", "fingerprint": fingerprint}
    if words & {"EXPSIG", "EXPKEYSIG", "REVKEYSIG", "KEYREVOKED", "KEYEXPIRED"}:
        return {"status": "untrusted", "fingerprint": fingerprint}
    trusted_set = set(trusted)
    chosen = next((f for f in valid if f in trusted_set), None)
    return {"status": "good", "fingerprint": chosen} if chosen else {"status": "untrusted", "fingerprint": fingerprint}


def check_file(data: str | os.PathLike[str], signature: str | os.PathLike[str] | None = None,
               trusted: Iterable[str] | None = None) -> dict[str, Any]:
    """Check the detached signature ``signature`` (default ``<data>.asc``) of ``data``: ``{"status","fingerprint"}``.

    ``trusted`` are the trusted primary fingerprints (default: :func:`trusted_fingerprints`).
    """
    data = Path(data)
    sig = Path(signature) if signature is not None else data.with_name(data.name + ".asc")
    if not sig.is_file():
        return {"status": "missing", "fingerprint": None}
    if not data.is_file():
        return {"status": "bad", "fingerprint": None}
    trusted = trusted_fingerprints() if trusted is None else tuple(trusted)
    proc = _gpg(["--trust-model", "always", "--verify", "--", str(sig), str(data)], f"check the signature {sig}")
    return classify(_status(proc.stdout), proc.returncode, trusted)


def sign_file(path: str | os.PathLike[str], key: str | None = None) -> dict[str, Any]:
    """Write the detached ASCII-armored signature ``<path>.asc`` made with ``key`` (default ``PROCOS_SIGNING_KEY``).

    Returns ``{"signature": path of the .asc, "fingerprint": the signing key's primary fingerprint}``.
    The ``.asc`` replaces an older one atomically, and only once it verifies.
    """
    from engine.config import load_config

    data = Path(path)
    key = key or load_config().get("signing_key")
    if not key:
        raise SigningFailed(f"no signing key given for {data}",
                            hint="give --key KEYID (a fingerprint, key id or e-mail) or set PROCOS_SIGNING_KEY")
    if not data.is_file():
        raise SigningFailed(f"cannot sign {data}: no such file")
    target = data.with_name(data.name + ".asc")
    tmp = data.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        proc = _gpg(["--pinentry-mode", "loopback", "--yes", "--armor", "--detach-sign", "--local-user", key,
                     "--output", str(tmp), "--", str(data)], f"sign {data}")
        words = {line[0] for line in _status(proc.stdout)}
        if proc.returncode != 0 or "SIG_CREATED" not in words or not tmp.is_file():
            why = ("the key needs a passphrase, and signing here runs without a prompt" if "NEED_PASSPHRASE" in words
                   else f"gpg has no usable secret key {key!r}" if "INV_SGNR" in words
                   else (proc.stderr.strip().splitlines() or ["gpg failed"])[-1])
            raise SigningFailed(f"cannot sign {data} with key {key!r}: {why}", hint=SIGN_HINT)
        result = check_file(data, tmp, trusted=())
        if result["status"] != "untrusted" or result["fingerprint"] is None:
            raise SigningFailed(f"the signature gpg made for {data} does not verify ({result['status']})",
                                hint="check the keyring: gpg --list-secret-keys")
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return {"signature": str(target), "fingerprint": result["fingerprint"]}


def sign_bundle(root: Path, key: str | None = None) -> dict[str, Any]:
    """Sign the bundle folder ``root``: ``checksums.sha256`` -> ``checksums.sha256.asc``."""
    checksums = layout.checksums_path(root)
    if not checksums.is_file():
        raise SigningFailed(f"{root} has no {layout.CHECKSUMS}; only a finished bundle can be signed",
                            hint="sign a folder written by procos snapshot export")
    return sign_file(checksums, key)


def check_signature(root: Path, trusted: Iterable[str] | None = None) -> dict[str, Any]:
    """The signature status of the bundle folder ``root`` (``missing`` without ``checksums.sha256.asc``)."""
    return check_file(layout.checksums_path(root), layout.signature_path(root), trusted)
