"""How bundles are opened and trusted on the way in: keys for ``.age`` files, trusted signers, required signatures.

:class:`BundleAccess` travels from the front door (``engine.api``) to the verify-first import
functions. A good signature by a trusted key is required when the caller asks for it
(``--require-signature``) and, whatever the caller asks, whenever the deployment environment is
prod (:func:`engine.config.environment`): there is no way to switch the requirement off in prod.

Keys for encrypted bundles come from the caller (``--identity``, ``--passphrase-file``) or else
from ``PROCOS_AGE_IDENTITY`` (``age_identity`` in config.yaml), an identity file.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from engine.crypto import AgeError, AgeKeys
from engine.errors import DecryptionFailed, SignatureRequired

from . import layout
from .signature import TRUST_HINT, trusted_fingerprints


@dataclass(frozen=True)
class BundleAccess:
    """Keys to decrypt ``.age`` bundles, extra trusted fingerprints, and whether a good signature is required."""

    keys: AgeKeys | None = None
    trusted_keys: tuple[str, ...] = ()
    require_signature: bool = False

    def trusted(self) -> tuple[str, ...]:
        """The configured trusted fingerprints plus :attr:`trusted_keys`."""
        return trusted_fingerprints(self.trusted_keys)

    def requirement(self) -> str | None:
        """Why a good signature is required (``--require-signature``, ``PROCOS_ENV=prod``), or None when it is not."""
        from engine.config import environment

        if self.require_signature:
            return "--require-signature"
        return "the deployment environment is prod" if environment() == "prod" else None


def access_from(identity: str | Iterable[str] | None = None, passphrase_file: str | None = None,
                trusted_keys: Iterable[str] | None = None, require_signature: bool = False) -> BundleAccess:
    """A :class:`BundleAccess` from the front door's arguments (identity files, passphrase file, fingerprints)."""
    files = [identity] if isinstance(identity, str) else list(identity or [])
    keys = None
    if files or passphrase_file is not None:
        try:
            keys = AgeKeys.from_files(files, passphrase_file)
        except AgeError as exc:
            raise _key_error(str(exc)) from None
    return BundleAccess(keys, tuple(trusted_keys or ()), bool(require_signature))


def configured_keys() -> AgeKeys | None:
    """The identities of ``PROCOS_AGE_IDENTITY`` (or ``age_identity`` in config.yaml), or None when unset."""
    from engine.config import load_config

    path = load_config().get("age_identity")
    if not path:
        return None
    try:
        return AgeKeys.from_files([path])
    except AgeError as exc:
        raise _key_error(f"PROCOS_AGE_IDENTITY: {exc}") from None


def _key_error(problem: str) -> DecryptionFailed:
    return DecryptionFailed(f"{problem}; nothing was decrypted", [{"path": "", "problem": problem}],
                            hint="an identity file holds AGE-SECRET-KEY-1... lines (age-keygen -o key.txt writes "
                                 "one); a passphrase file holds the passphrase")


def require_good(signature: dict[str, Any], name: object, requirement: str, consequence: str) -> None:
    """Raise SignatureRequired unless ``signature`` (``{"status","fingerprint"}``) is ``good``."""
    status, fingerprint = signature["status"], signature.get("fingerprint")
    if status == "good":
        return
    why = {
        "missing": f"is not signed (no {layout.SIGNATURE})",
        "untrusted": f"is signed by {fingerprint or 'a key that is not in the keyring'}, which is not a trusted "
                     "key (or is revoked or expired)",
        "bad": f"has a {layout.SIGNATURE} that does not verify",
    }.get(status, f"has signature status {status!r}")
    raise SignatureRequired(
        f"{name} {why}; a good signature by a trusted key is required ({requirement}); {consequence}",
        [{"path": layout.SIGNATURE, "problem": why}],
        hint=HINTS.get(status, TRUST_HINT))


HINTS = {
    "missing": f"sign it where it was made: procos snapshot sign BUNDLE --key KEYID (GNUPGHOME's keyring); "
               f"then {TRUST_HINT}",
    "untrusted": f"if you trust the signer, {TRUST_HINT}; a key not in the keyring: gpg --import its public key",
    "bad": "get an intact copy of the bundle (procos snapshot verify lists what differs), or sign it again",
}
