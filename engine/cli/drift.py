"""``procos drift``: has a store drifted from a snapshot bundle? (thin shell over engine.api.drift_check)."""

from __future__ import annotations

import click

from .output import JSON_OPT, emit_json

DRIFT_EXIT = 4

EXIT_HELP = f"""\b
Exit codes: 0 no drift, {DRIFT_EXIT} drift found (vector_drift_detected was emitted), 1 error
(e.g. the bundle does not verify), 2 usage error, 75 store locked."""


@click.group()
def drift() -> None:
    """Detect vectors that changed since a snapshot bundle was taken.

    \b
    Example: procos drift check faiss:./kb --snapshot ./snapshots/knowledge_snapshot_20260101_120000
    """


@drift.command(epilog=EXIT_HELP)
@click.argument("uri", required=False, metavar="[URI]")
@click.option("--snapshot", "snapshot", required=True, type=click.Path(exists=True),
              help="The baseline bundle (folder or .tar.zst); it is verified first.")
@click.option("--sample", type=click.IntRange(min=1), help="Check N random bundle records (fetched by id) "
              "instead of all; unexpected ids are then not looked for.")
@click.option("--all", "check_all", is_flag=True, help="Check every record and find unexpected ids too "
              "(the default).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed for --sample.")
@click.option("--instance-id", help="Instance id to put in the emitted event (for scheduled processes).")
@JSON_OPT
def check(uri: str | None, snapshot: str, sample: int | None, check_all: bool, seed: int,
          instance_id: str | None, as_json: bool) -> None:
    """Hash the store's current vectors and compare them with the bundle's vector_hash column.

    URI omitted: $VECTOR_ENDPOINT. Lists drifted (vector bytes changed), missing (in the bundle,
    not in the store) and unexpected (in the store, not in the bundle; --all only) ids. When any
    drift is found, vector_drift_detected goes to $PROCOS_HOME/events.jsonl and $PROCOS_WEBHOOK_URL.

    \b
    Example: procos drift check faiss:./kb --snapshot ./snapshots/knowledge_snapshot_20260101_120000 --json
    """
    from engine import api

    if sample is not None and check_all:
        raise click.UsageError("give --sample N or --all, not both")
    result = api.drift_check(uri, snapshot, sample=sample, seed=seed, instance_id=instance_id)
    if as_json:
        emit_json(result)
    else:
        counts = result["counts"]
        verdict = "DRIFT" if result["drift"] else "NO DRIFT"
        unexpected = counts["unexpected"] if result["unexpected_checked"] else "not checked (sample)"
        click.echo(f"{verdict}: {result['checked']} records checked ({result['mode']}); drifted "
                   f"{counts['drifted']}, missing {counts['missing']}, unexpected {unexpected}")
        for kind in ("drifted", "missing", "unexpected"):
            if result[kind]:
                shown = result[kind][:20]
                more = " ..." if counts[kind] > len(shown) else ""
                click.echo(f"  {kind}: {', '.join(shown)}{more}")
        for change in result["settings_changed"]:
            click.echo(f"  setting {change['setting']}: snapshot {change['snapshot']}, store {change['store']}")
    for problem in result["event_problems"]:
        click.echo(f"Warning: {problem}", err=True)
    if result["drift"]:
        raise SystemExit(DRIFT_EXIT)
