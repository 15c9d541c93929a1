"""Signing and encryption operations of the front door.

- :func:`sign_snapshot` / :func:`sign_file`: detached OpenPGP signatures by the system ``gpg``
  (``GNUPGHOME``'s keyring); the key defaults to ``PROCOS_SIGNING_KEY``.
- :func:`signature_status`: ``{"status": "good"|"bad"|"missing"|"untrusted", "fingerprint"}``.
- :func:`encrypt_snapshot`: ``PATH.age``, the packed bundle in the age format.
- :func:`bundle_access`: the trust and key arguments every import and verify function takes.

Keys, passphrases and identity files' contents never appear in a result or an error; results name
files and fingerprints only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any


def bundle_access(*, require_signature: bool = False, trusted_keys: list[str] | tuple[str, ...] | None = None,
                  identity: str | list[str] | None = None, passphrase_file: str | None = None) -> Any:
    """An :class:`engine.snapshot.access.BundleAccess` from front-door arguments (fingerprints checked now)."""
    from engine.snapshot.access import access_from
    from engine.snapshot.signature import normalize_fingerprint

    fingerprints = [normalize_fingerprint(k, "--trusted-key") for k in trusted_keys or []]
    return access_from(identity, passphrase_file, fingerprints, require_signature)


def sign_snapshot(bundle: str | Path, key: str | None = None) -> dict[str, Any]:
    """Sign bundle folder ``bundle``: write ``checksums.sha256.asc`` with ``key`` (default ``PROCOS_SIGNING_KEY``).

    The bundle is verified first (a bundle that fails is not signed: BundleInvalid). When
    ``<bundle>.tar.zst`` exists beside it, it is packed again so the archive carries the signature.
    Returns ``{"bundle", "signature", "fingerprint", "content_hash", "archive"}`` (archive: path or None).
    """
    from engine.errors import BundleInvalid, SigningFailed
    from engine.snapshot import layout
    from engine.snapshot.pack import pack_bundle
    from engine.snapshot.signature import sign_bundle
    from engine.snapshot.verify import verify_dir

    root = Path(bundle)
    if not root.is_dir():
        raise SigningFailed(f"{root} is not a bundle folder; only a folder can be signed",
                            hint="sign the folder, then pack it (procos snapshot pack), or export it again")
    report = verify_dir(root.resolve(), signature=False)
    if not report.ok:
        first = report.errors[0]
        raise BundleInvalid(f"{root} failed verification with {len(report.errors)} problem(s), e.g. {first.path}: "
                            f"{first.problem}; it was not signed", [f.to_json() for f in report.errors],
                            hint="run procos snapshot verify for the full list; sign only an intact bundle")
    signed = sign_bundle(root.resolve(), key)
    archive = layout.archive_path(root.resolve())
    repacked = str(pack_bundle(root)) if archive.is_file() else None
    return {"bundle": str(root), "signature": signed["signature"], "fingerprint": signed["fingerprint"],
            "content_hash": report.manifest.get("content_hash"), "archive": repacked}


def sign_file(path: str | Path, key: str | None = None) -> dict[str, Any]:
    """Write the detached ASCII-armored signature ``<path>.asc`` (a DR drill report, ...): ``{"signature","fingerprint"}``."""
    from engine.snapshot.signature import sign_file as sign

    return sign(path, key)


def signature_status(path: str | Path, signature: str | Path | None = None,
                     trusted_keys: list[str] | None = None) -> dict[str, Any]:
    """The status of ``<path>.asc`` (or ``signature``) for ``path``: ``{"status","fingerprint"}``.

    ``trusted_keys`` add to ``PROCOS_TRUSTED_KEYS``.
    """
    from engine.snapshot.signature import check_file, trusted_fingerprints

    return check_file(path, signature, trusted_fingerprints(trusted_keys))


def encrypt_snapshot(path: str | Path, recipients: list[str] | tuple[str, ...] = (),
                     passphrase_file: str | Path | None = None) -> dict[str, Any]:
    """Write ``PATH.age`` beside ``path`` (a bundle folder, packed on the fly, or its ``.tar.zst``).

    Encrypted to every ``age1...`` recipient, or with the passphrase in ``passphrase_file``.
    Returns ``{"path","source","recipients","passphrase","bytes"}``; the stock ``age -d`` decrypts it.
    """
    from engine.snapshot.encrypt import encrypt_bundle

    return encrypt_bundle(path, list(recipients), passphrase_file)
