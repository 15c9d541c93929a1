"""``procos snapshot sign`` and ``procos snapshot encrypt``, and the trust options of verify and import.

Thin shells over :mod:`engine.api.crypto`; the commands are added to the ``snapshot`` group.
"""

from __future__ import annotations

import click

from .output import JSON_OPT, emit

TRUSTED_KEY_OPT = click.option(
    "--trusted-key", "trusted_keys", multiple=True, metavar="FPR",
    help="Trust signatures by this OpenPGP fingerprint, in addition to $PROCOS_TRUSTED_KEYS (repeatable).")
IDENTITY_OPT = click.option(
    "--identity", type=click.Path(exists=True, dir_okay=False), metavar="KEY_FILE",
    help="age identity file (age-keygen) to decrypt an encrypted .age bundle [default: $PROCOS_AGE_IDENTITY].")
PASSPHRASE_OPT = click.option(
    "--passphrase-file", type=click.Path(exists=True, dir_okay=False), metavar="F",
    help="File holding the passphrase of a passphrase-encrypted .age bundle.")


def decryption_options(command):
    """--identity and --passphrase-file, for commands that read bundles."""
    return IDENTITY_OPT(PASSPHRASE_OPT(command))


@click.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--key", metavar="KEYID", help="The gpg secret key to sign with (fingerprint, key id or e-mail) "
              "[default: $PROCOS_SIGNING_KEY]; GNUPGHOME selects the keyring.")
@JSON_OPT
def sign(bundle: str, key: str | None, as_json: bool) -> None:
    """Sign BUNDLE: write checksums.sha256.asc, a detached OpenPGP signature of its checksums.sha256.

    The bundle is verified first. Check it by hand with
    gpg --verify checksums.sha256.asc checksums.sha256. A BUNDLE.tar.zst beside it is packed again
    so that it carries the signature. Prints {"bundle","signature","fingerprint","content_hash","archive"}.

    \b
    Example: procos snapshot sign ./snapshots/knowledge_snapshot_20260101_120000 --key ops@example.org
    """
    from engine import api

    emit(api.sign_snapshot(bundle, key), as_json)


@click.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--recipient", "recipients", multiple=True, metavar="AGE_PUBLIC_KEY",
              help="Encrypt to this age public key (age1..., as age-keygen prints it); repeatable.")
@click.option("--passphrase-file", type=click.Path(exists=True, dir_okay=False), metavar="F",
              help="Encrypt with the passphrase in F instead (scrypt; cannot be combined with --recipient).")
@JSON_OPT
def encrypt(path: str, recipients: tuple[str, ...], passphrase_file: str | None, as_json: bool) -> None:
    """Encrypt PATH (a bundle folder, packed on the fly, or its .tar.zst) into PATH.age (age format).

    The stock age decrypts it: age -d -i key.txt PATH.age > out.tar.zst. procos snapshot import
    and verify open it with --identity KEY_FILE (or $PROCOS_AGE_IDENTITY) or --passphrase-file F.
    Prints {"path","source","recipients","passphrase","bytes"}.

    \b
    Example: procos snapshot encrypt ./snapshots/knowledge_snapshot_20260101_120000 --recipient age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
    """
    from engine import api

    emit(api.encrypt_snapshot(path, recipients, passphrase_file), as_json)
