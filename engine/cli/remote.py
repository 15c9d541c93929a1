"""``procos snapshot push|pull|list|abort-incomplete|prune``: bundles in S3 and retention (thin shells over engine.api).

:func:`add_remote_commands` adds these commands to the ``snapshot`` group.
"""

from __future__ import annotations

from typing import Any

import click

from .output import JSON_OPT, emit, emit_json

ENDPOINT_OPT = click.option("--endpoint-url", metavar="URL", default=None,
                            help="S3 endpoint (default: the standard AWS configuration, e.g. $AWS_ENDPOINT_URL_S3).")
CONCURRENCY_OPT = click.option("--concurrency", type=click.IntRange(1, 64), default=8, show_default=True,
                               help="Parts transferred at the same time.")


@click.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.argument("destination", metavar="s3://BUCKET/PREFIX")
@click.option("--part-size", "part_size", type=click.IntRange(min=5), default=16, show_default=True, metavar="MiB",
              help="Multipart part size in MiB (memory use is about part size x concurrency).")
@CONCURRENCY_OPT
@click.option("--sse", type=click.Choice(["aes256", "kms"]), default=None, help="Server-side encryption.")
@click.option("--kms-key-id", metavar="ID", default=None, help="KMS key for --sse kms (default: the bucket's).")
@click.option("--storage-class", metavar="CLASS", default=None, help="S3 storage class, e.g. STANDARD_IA, GLACIER_IR.")
@click.option("--retain-until", metavar="DATE", default=None,
              help="Object Lock retention on every object until DATE (YYYY-MM-DD, UTC); the bucket needs Object Lock.")
@click.option("--retention-mode", type=click.Choice(["governance", "compliance"]), default="governance",
              show_default=True, help="Object Lock mode for --retain-until.")
@ENDPOINT_OPT
@JSON_OPT
def push(bundle: str, destination: str, part_size: int, concurrency: int, sse: str | None, kms_key_id: str | None,
         storage_class: str | None, retain_until: str | None, retention_mode: str, endpoint_url: str | None,
         as_json: bool) -> None:
    """Upload BUNDLE (folder, .tar.zst or .age) to s3://BUCKET/PREFIX/<bundle name>.

    Every part carries a SHA-256 checksum; each file is checked against checksums.sha256 and the
    checksum S3 reports; manifest.json goes last, so an unfinished push is never a complete bundle.
    Run the same command again to resume: what is already there and checked is not sent again.

    \b
    Example:
      procos snapshot push ./snapshots/knowledge_snapshot_20250101_120000 s3://kb-archive/prod --json
    """
    from engine import api

    emit(api.push_snapshot(bundle, destination, part_size_mib=part_size, concurrency=concurrency, sse=sse,
                           kms_key_id=kms_key_id, storage_class=storage_class, retain_until=retain_until,
                           retention_mode=retention_mode, endpoint_url=endpoint_url), as_json)


@click.command()
@click.argument("source", metavar="s3://BUCKET/PREFIX/BUNDLE")
@click.argument("out_dir", metavar="DIR", type=click.Path(file_okay=False))
@CONCURRENCY_OPT
@ENDPOINT_OPT
@JSON_OPT
def pull(source: str, out_dir: str, concurrency: int, endpoint_url: str | None, as_json: bool) -> None:
    """Download a bundle from S3 into DIR; it appears there only after every checksum verified.

    The download goes to DIR/.<bundle name>.pull-partial and is kept when interrupted: run the
    same command again to resume. Exit code 3 when the downloaded bundle fails verification.

    \b
    Example:
      procos snapshot pull s3://kb-archive/prod/knowledge_snapshot_20250101_120000 ./restore --json
    """
    from engine import api
    from engine.errors import BundleInvalid

    try:
        result = api.pull_snapshot(source, out_dir, concurrency=concurrency, endpoint_url=endpoint_url)
    except BundleInvalid as err:
        from . import report_error

        report_error(err, debug=False)
        raise SystemExit(3) from err
    emit(result, as_json)


@click.command(name="list")
@click.argument("location", metavar="LOCATION")
@click.option("--incomplete", is_flag=True, help="List what unfinished pushes and pulls left instead.")
@ENDPOINT_OPT
@JSON_OPT
def list_(location: str, incomplete: bool, endpoint_url: str | None, as_json: bool) -> None:
    """List the complete bundles of LOCATION (a folder or s3://BUCKET/PREFIX), newest first.

    \b
    Example:
      procos snapshot list s3://kb-archive/prod --json
    """
    from engine import api

    rows = api.list_snapshots(location, incomplete=incomplete, endpoint_url=endpoint_url)
    if as_json:
        emit_json(rows)
        return
    from .tables import age, size, table

    if incomplete:
        click.echo(table(rows, [("NAME", lambda r: r["name"]), ("WHY", lambda r: r["reason"]),
                                ("OBJECTS", lambda r: r["objects"]), ("SIZE", lambda r: size(r["bytes"])),
                                ("UPLOADS", lambda r: r["uploads"])], empty="nothing incomplete"))
        return
    click.echo(table(rows, [
        ("NAME", lambda r: r["name"]), ("KIND", lambda r: r["kind"] or "?"),
        ("CREATED", lambda r: (r["created_utc"] or "-").replace("T", " ").rstrip("Z")),
        ("AGE", lambda r: age(r["created_utc"])), ("RECORDS", lambda r: r["record_count"]),
        ("SIZE", lambda r: size(r["bytes"])), ("SIGNED", lambda r: "yes" if r["signed"] else "no"),
        ("ENCRYPTED", lambda r: "yes" if r["encrypted"] else "no"),
        ("PARENT", lambda r: str((r.get("parent") or {}).get("snapshot_id") or "-")[:8])],
        empty=f"no complete bundles in {location}"))


@click.command(name="abort-incomplete")
@click.argument("location", metavar="LOCATION")
@ENDPOINT_OPT
@JSON_OPT
def abort_incomplete(location: str, endpoint_url: str | None, as_json: bool) -> None:
    """Remove what unfinished pushes and pulls left in LOCATION (never a complete bundle).

    Do not run it while a push to LOCATION is in progress: its unfinished uploads would be removed.

    \b
    Example:
      procos snapshot abort-incomplete s3://kb-archive/prod --json
    """
    from engine import api

    emit(api.abort_incomplete(location, endpoint_url=endpoint_url), as_json)


@click.command()
@click.argument("location", metavar="LOCATION")
@click.option("--keep-last", type=click.IntRange(min=0), default=0, metavar="N", help="Keep the N newest bundles.")
@click.option("--keep-daily", type=click.IntRange(min=0), default=0, metavar="N",
              help="Keep the newest bundle of each of the N newest days.")
@click.option("--keep-weekly", type=click.IntRange(min=0), default=0, metavar="N",
              help="Keep the newest bundle of each of the N newest ISO weeks.")
@click.option("--keep-monthly", type=click.IntRange(min=0), default=0, metavar="N",
              help="Keep the newest bundle of each of the N newest months.")
@click.option("--dry-run", is_flag=True, help="Print the plan; change nothing.")
@ENDPOINT_OPT
@JSON_OPT
def prune(location: str, keep_last: int, keep_daily: int, keep_weekly: int, keep_monthly: int, dry_run: bool,
          endpoint_url: str | None, as_json: bool) -> None:
    """Remove the bundles of LOCATION that the policy does not keep (restic forget rules).

    Every full bundle and delta that a kept delta's chain needs is kept. Bundles under S3 Object
    Lock retention are reported as retained and left whole. A local folder's catalog is updated.
    Exit code 1 when a bundle could not be removed.

    \b
    Example:
      procos snapshot prune s3://kb-archive/prod --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run --json
    """
    from engine import api

    result = api.prune_snapshots(location, keep_last=keep_last, keep_daily=keep_daily, keep_weekly=keep_weekly,
                                 keep_monthly=keep_monthly, dry_run=dry_run, endpoint_url=endpoint_url)
    if as_json:
        emit_json(_plan_view(result) if dry_run else result)
    else:
        for key in ("keep", "retained", "remove") if dry_run else ("keep", "retained", "removed"):
            for name in result[key]:
                click.echo(f"{key:8} {name}  {'; '.join(result['reasons'].get(name, []))}")
        for name, why in result["failed"].items():
            click.echo(f"failed   {name}  {why}")
    if result["failed"]:
        raise SystemExit(1)


def _plan_view(result: dict[str, Any]) -> dict[str, Any]:
    """The dry run's plan: ``{"keep", "remove", "reasons", ...}`` without the (empty) outcome keys."""
    return {k: v for k, v in result.items() if k not in ("removed", "failed")}


def add_remote_commands(group: click.Group) -> None:
    """Add push, pull, list, abort-incomplete and prune to ``group`` (the ``snapshot`` group)."""
    for command in (push, pull, list_, abort_incomplete, prune):
        group.add_command(command)
