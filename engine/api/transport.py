"""Transport and retention operations of the front door: push, pull, list, abort-incomplete, prune.

A location is a local snapshots folder or ``s3://BUCKET/PREFIX``. S3 access uses the standard AWS
configuration (credentials chain, profile, region, ``AWS_ENDPOINT_URL[_S3]``); ``endpoint_url``
overrides the endpoint. No credential is ever part of a result, a message or a file.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput, os_errors

SSE_CHOICES = ("aes256", "kms")
RETENTION_MODES = ("governance", "compliance")
MIN_PART_MIB = 5
DEFAULT_PART_MIB = 16
DEFAULT_CONCURRENCY = 8


def parse_retain_until(value: str | datetime | None) -> datetime | None:
    """``YYYY-MM-DD`` (midnight UTC) or an ISO 8601 time (UTC when it has no offset); must be in the future."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        when = value
    else:
        text = str(value).strip().replace("Z", "+00:00")
        try:
            when = datetime.fromisoformat(text)
        except ValueError as exc:
            raise InvalidInput(f"--retain-until {value!r} is not a date",
                               hint="give YYYY-MM-DD or an ISO 8601 time such as 2031-01-31T00:00:00Z") from exc
    when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    if when <= datetime.now(UTC):
        raise InvalidInput(f"--retain-until {value!r} is not in the future", hint="give a later date")
    return when.replace(microsecond=0)


def push_snapshot(bundle: str | Path, destination: str, *, part_size_mib: int = DEFAULT_PART_MIB,
                  concurrency: int = DEFAULT_CONCURRENCY, sse: str | None = None, kms_key_id: str | None = None,
                  storage_class: str | None = None, retain_until: str | datetime | None = None,
                  retention_mode: str = "governance", endpoint_url: str | None = None) -> dict[str, Any]:
    """Upload a bundle (folder, ``.tar.zst`` or ``.age``) to ``s3://BUCKET/PREFIX``, manifest last, resumably.

    Returns ``{"destination", "name", "snapshot_id", "content_hash", "files", "bytes", "bytes_sent",
    "bytes_skipped", "seconds", "sse", "storage_class", "retain_until", "retention_mode"}``.
    """
    from engine.transport import PushOptions, push_bundle

    if part_size_mib < MIN_PART_MIB:
        raise InvalidInput(f"--part-size {part_size_mib} MiB is below S3's minimum part size of {MIN_PART_MIB} MiB",
                           hint=f"use --part-size {MIN_PART_MIB} or more")
    if not 1 <= concurrency <= 64:
        raise InvalidInput(f"--concurrency {concurrency} is outside 1..64", hint="use 1 to 64")
    if sse is not None and sse not in SSE_CHOICES:
        raise InvalidInput(f"unknown --sse {sse!r}", hint="use aes256 or kms")
    if kms_key_id and sse != "kms":
        raise InvalidInput("--kms-key-id needs --sse kms", hint="add --sse kms")
    if retention_mode not in RETENTION_MODES:
        raise InvalidInput(f"unknown --retention-mode {retention_mode!r}", hint="use governance or compliance")
    options = PushOptions(part_size=part_size_mib << 20, concurrency=concurrency, sse=sse, kms_key_id=kms_key_id,
                          storage_class=storage_class or None, retain_until=parse_retain_until(retain_until),
                          retention_mode=retention_mode)
    return push_bundle(bundle, destination, options, endpoint_url=endpoint_url)


@os_errors("pull {source} into {out_dir}", "out_dir")
def pull_snapshot(source: str, out_dir: str | Path, *, concurrency: int = DEFAULT_CONCURRENCY,
                  endpoint_url: str | None = None) -> dict[str, Any]:
    """Download ``s3://BUCKET/PREFIX/<bundle name>`` into ``out_dir``; it appears there only once verified.

    Returns ``{"path", "name", "source", "snapshot_id", "content_hash", "record_count", "files", "bytes",
    "bytes_received", "bytes_skipped", "verified", "seconds"}``.
    """
    from engine.transport import pull_bundle

    if not 1 <= concurrency <= 64:
        raise InvalidInput(f"--concurrency {concurrency} is outside 1..64", hint="use 1 to 64")
    return pull_bundle(source, out_dir, concurrency=concurrency, endpoint_url=endpoint_url)


def list_snapshots(location: str | Path, *, incomplete: bool = False, endpoint_url: str | None = None
                   ) -> list[dict[str, Any]]:
    """The complete bundles of a folder or S3 prefix, newest first:
    ``[{"name", "snapshot_id", "created_utc", "kind", "parent", "record_count", "bytes", "signed", "encrypted",
    "location"}]``; with ``incomplete``, what unfinished pushes and pulls left there instead
    (``[{"name", "location", "objects", "bytes", "uploads", "partial", "reason"}]``)."""
    from engine.transport import list_location

    return list_location(location, incomplete=incomplete, endpoint_url=endpoint_url)


def abort_incomplete(location: str | Path, *, endpoint_url: str | None = None) -> dict[str, Any]:
    """Remove unfinished uploads and bundle folders without manifest.json: ``{"location", "removed",
    "aborted_uploads", "retained"}``."""
    from engine import transport

    return transport.abort_incomplete(location, endpoint_url=endpoint_url)


def prune_snapshots(location: str | Path, *, keep_last: int = 0, keep_daily: int = 0, keep_weekly: int = 0,
                    keep_monthly: int = 0, dry_run: bool = False, endpoint_url: str | None = None) -> dict[str, Any]:
    """Remove the bundles the policy does not keep (restic ``forget`` rules), never a chain a kept delta needs.

    Returns ``{"keep", "remove", "retained", "reasons", "warnings", "policy", "dry_run", "removed", "failed",
    "location"}``; with ``dry_run`` nothing changes.
    """
    from engine.transport import Policy, prune

    counts = {"--keep-last": keep_last, "--keep-daily": keep_daily, "--keep-weekly": keep_weekly,
              "--keep-monthly": keep_monthly}
    negative = [name for name, n in counts.items() if n < 0]
    if negative:
        raise InvalidInput(f"{negative[0]} must be 0 or more", hint="give a count of bundles to keep")
    policy = Policy(last=keep_last, daily=keep_daily, weekly=keep_weekly, monthly=keep_monthly)
    if policy.empty:
        raise InvalidInput("no retention policy given: prune would keep every bundle",
                           hint="give at least one of --keep-last, --keep-daily, --keep-weekly, --keep-monthly")
    return prune(location, policy, dry_run=dry_run, endpoint_url=endpoint_url)


def fetch_bundle(source: str, folder: str | Path) -> dict[str, Any]:
    """A local copy of bundle ``source`` (``s3://...``) in ``folder``: pulled and verified once, reused after.

    For the import process, whose steps may run in different commands: the first step pulls the bundle,
    later steps (perhaps after an approval, on another runner) find it there or pull it again. Returns
    ``{"path", "source", "pulled"}``.
    """
    from engine.transport.location import split_bundle_url

    _, name = split_bundle_url(source)
    target = Path(folder) / name
    if (target / "manifest.json").is_file() or (target.is_file() and target.stat().st_size > 0):
        return {"path": str(target), "source": source, "pulled": False}
    result = pull_snapshot(source, folder)
    return {"path": str(result["path"]), "source": source, "pulled": True}


def remove_fetched(folder: str | Path) -> None:
    """Remove a folder of fetched bundle copies (the import process's clean-up and cancel action)."""
    import shutil

    shutil.rmtree(folder, ignore_errors=True)
