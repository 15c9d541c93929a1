"""``procos replicate`` (ship changes continuously) and ``procos restore`` (to a point in time)."""

from __future__ import annotations

import json

import click

from .output import JSON_OPT, emit_json


@click.command("replicate")
@click.argument("source", required=False, metavar="[SOURCE]")
@click.option("--to", "location", required=True, metavar="LOCATION", help="A snapshots folder or s3://BUCKET/PREFIX.")
@click.option("--interval", default="30s", show_default=True, help="Ship what changed every INTERVAL (30s, 5m).")
@click.option("--full-every", default="24h", show_default=True, help="Ship a new full bundle every FULL_EVERY.")
@click.option("--once", is_flag=True, help="Ship once (if anything changed) and exit.")
@JSON_OPT
def replicate(source: str | None, location: str, interval: str, full_every: str, once: bool, as_json: bool) -> None:
    """Ship a delta bundle of SOURCE into LOCATION every interval in which it changed, until SIGTERM.

    A full bundle goes first (and again every --full-every); nothing is shipped for an interval without
    changes. Each bundle is recorded in the location's catalog, signed when PROCOS_SIGNING_KEY is set. A
    restarted replicate continues from the last shipped sequence. Prints one line (JSON with --json)
    per shipped bundle. SOURCE omitted: $VECTOR_ENDPOINT.

    \\b
    Example: procos replicate postgresql://kb@db/knowledge --to /srv/replica --interval 30s --full-every 24h
    """
    from engine import api

    def report(result: dict) -> None:
        shipped = result["shipped"]
        if as_json:
            click.echo(json.dumps(result, sort_keys=True))
        elif result.get("error"):
            click.echo(f"Error: {result['error']} (trying again next interval)", err=True)
        elif shipped:
            click.echo(f"shipped {shipped['kind']} {shipped['name']} (sequence {shipped['sequence']}, "
                       f"as of {shipped['as_of_utc']})")

    if once:
        report(api.replicate_once(source, location, full_every=full_every))
        return
    click.echo(f"replicating into {location} every {interval}; stop with SIGTERM or Ctrl-C", err=True)
    counts = api.replicate(source, location, interval=interval, full_every=full_every, on_round=report)
    click.echo(f"stopped after {counts['rounds']} round(s): {counts['full']} full, {counts['delta']} delta", err=True)


@click.command("restore")
@click.argument("location")
@click.argument("target", required=False, metavar="[TARGET]")
@click.option("--at", "at", metavar="TIMESTAMP", help="ISO 8601 time (UTC when it has no offset) to restore the state of.")
@click.option("--latest", is_flag=True, help="The newest shipped state (the default).")
@click.option("--dry-run", is_flag=True, help="Verify the bundles and show the plan; write nothing.")
@click.option("--store-id", help="The source store, when the location holds bundles of several stores.")
@click.option("--trusted-key", "trusted_keys", multiple=True, metavar="FPR", help="Also trust this key's signatures.")
@JSON_OPT
def restore(location: str, target: str | None, at: str | None, latest: bool, dry_run: bool, store_id: str | None,
            trusted_keys: tuple[str, ...], as_json: bool) -> None:
    """Restore into TARGET the state the source had at --at: the newest full bundle at or before it plus
    its deltas up to it, every bundle verified before a row is written (TARGET is replaced).

    \\b
    Example: procos restore /srv/replica postgresql+embedded:./restored --at 2026-01-31T12:00:00Z --json
    """
    from engine import api

    if at and latest:
        raise click.UsageError("give --at TIMESTAMP or --latest, not both")
    result = api.restore(location, target, at=at, dry_run=dry_run, store_id=store_id,
                         trusted_keys=list(trusted_keys) or None)
    if as_json:
        emit_json(result)
        return
    verb = "would restore" if dry_run else "restored"
    click.echo(f"{verb} {result['target']} to {result['at'] or 'the newest state'} from {len(result['chain'])} "
               f"bundle(s):")
    for e in result["chain"]:
        click.echo(f"  {e['kind']:<5}  {e['name']}  sequence {e['sequence']}  as of {e['as_of_utc'] or e['created_utc']}")
