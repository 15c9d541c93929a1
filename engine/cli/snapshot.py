"""``procos snapshot``: export, delta, pack, verify, inspect, catalog, migrate and import bundles (thin shells over engine.api)."""

from __future__ import annotations

import click

from engine.errors import ProcosError

from .output import JSON_OPT, emit, emit_json, paint
from .snapshot_crypto import TRUSTED_KEY_OPT, decryption_options, encrypt, sign

VERIFY_FAILED = 3
JOBS_OPT = click.option("--jobs", "-j", type=click.IntRange(min=1), default=None,
                        help="Work on this many shards at a time [default: export 1, verify/import min(4, cpus)].")
SHARD_ROWS_OPT = click.option("--shard-rows", type=click.IntRange(min=1), default=None,
                              help="Rows per embeddings/part-NNNNN.parquet shard [default: 100000].")


def bundle_writing_options(command):
    """The options every command that writes a bundle (export, delta) takes, in one place."""
    for option in reversed([
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
                     help="Snapshots folder; the bundle is created inside it as knowledge_snapshot_YYYYMMDD_HHMMSS."),
        click.option("--artifacts", "artifacts_dir", type=click.Path(exists=True, file_okay=False),
                     help="A folder of artifacts (bpmn/, prompts/, ...) that adds to or overrides the store's own."),
        click.option("--pack", is_flag=True, help="Also write <bundle>.tar.zst next to the bundle."),
        click.option("--compression-level", type=click.IntRange(1, 22), default=1, show_default=True,
                     help="zstd level of the embeddings shards (higher levels cost CPU and save almost nothing on float vectors; see docs/benchmarks.md)."),
        click.option("--source-env", help="Environment name recorded in the manifest (default: $PROCOS_ENV)."),
        SHARD_ROWS_OPT,
    ]):
        command = option(command)
    return command


@click.group()
def snapshot() -> None:
    """Snapshot bundles: a store's records and knowledge artifacts, with checksums that prove them.

    \b
    Exit codes: 0 ok, 1 error, 3 verification found problems (also: a bad signature, a required
    signature missing or untrusted, a bundle that does not decrypt), 75 store paused or locked.
    \b
    Example: procos snapshot export faiss:./kb --out ./snapshots && procos snapshot verify ./snapshots/knowledge_snapshot_*
    """


snapshot.add_command(sign)
snapshot.add_command(encrypt)


@snapshot.command()
@click.argument("uri", required=False, metavar="[URI]")
@bundle_writing_options
@click.option("--freeze", is_flag=True, help="Pause ingestion for the duration (cleared on every exit path).")
@JOBS_OPT
@click.option("--vector-encoding", type=click.Choice(["byte_stream_split", "plain"]), default="byte_stream_split",
              show_default=True, help="Parquet encoding of the vector column (byte_stream_split: smaller and faster).")
@JSON_OPT
def export(uri: str | None, out_dir: str, artifacts_dir: str | None, pack: bool, compression_level: int,
           freeze: bool, source_env: str | None, shard_rows: int | None, jobs: int | None, vector_encoding: str,
           as_json: bool) -> None:
    """Export the store URI into a new bundle inside --out.

    With --jobs N, N shards are written at a time and a pgvector store is read by N connections
    sharing one exported snapshot (as pg_dump -j): the bundle is byte-identical to --jobs 1.

    \b
    Example: procos snapshot export faiss:./source --out ./snapshots --pack --jobs 2 --json
    """
    from engine import api

    result = api.export_snapshot(uri, out_dir, artifacts_dir=artifacts_dir, pack=pack,
                                 compression_level=compression_level, freeze=freeze, source_env=source_env,
                                 shard_rows=shard_rows, jobs=jobs or 1, vector_encoding=vector_encoding)
    emit(result, as_json)


@snapshot.command()
@click.argument("bundle", type=click.Path(exists=True, file_okay=False))
@click.option("--level", type=click.IntRange(1, 22), default=6, show_default=True, help="zstd level.")
@JSON_OPT
def pack(bundle: str, level: int, as_json: bool) -> None:
    """Write BUNDLE.tar.zst next to BUNDLE (reproducible: the same bundle packs to the same bytes).

    \b
    Example: procos snapshot pack ./snapshots/knowledge_snapshot_20260101_120000
    """
    from engine import api

    emit(api.pack_snapshot(bundle, level), as_json)


@snapshot.command()
@click.argument("path", type=click.Path(exists=True))
@TRUSTED_KEY_OPT
@decryption_options
@JOBS_OPT
@JSON_OPT
def verify(path: str, trusted_keys: tuple[str, ...], identity: str | None, passphrase_file: str | None,
           jobs: int | None, as_json: bool) -> None:
    """Check every checksum, file, count and vector hash of a bundle folder, .tar.zst or encrypted .age.

    Every problem is reported, not just the first; the exit code is 0 only when all checks pass.
    The signature (checksums.sha256.asc) is reported as good, bad, missing or untrusted; a bad one
    is a failure.

    \b
    Example: procos snapshot verify ./snapshots/knowledge_snapshot_20260101_120000 --trusted-key FPR --json
    """
    from engine import api

    report = api.verify_snapshot(path, trusted_keys=list(trusted_keys), identity=identity,
                                 passphrase_file=passphrase_file, jobs=jobs)
    sig = report["signature"]
    signature = f"signature {sig['status']}" + (f" ({sig['fingerprint']})" if sig["fingerprint"] else "")
    if as_json:
        emit_json(report)
    elif report["ok"]:
        click.echo(f"{paint('OK')}: {path} verified ({report['manifest'].get('record_count')} records), {signature}")
    else:
        click.echo(f"{paint('FAILED')}: {path}: {len(report['errors'])} problem(s)")
        for err in report["errors"]:
            click.echo(f"  {err['path']}: {err['problem']}")
    if not report["ok"]:
        raise SystemExit(VERIFY_FAILED)


@snapshot.command()
@click.argument("path", type=click.Path(exists=True))
@click.option("--identity", type=click.Path(exists=True, dir_okay=False), help="age identity to read an encrypted bundle.")
@JSON_OPT
def inspect(path: str, identity: str | None, as_json: bool) -> None:
    """Print a summary of a bundle (no verification): its manifest, size on disk, age, signed, encrypted, parent.

    \b
    Example: procos snapshot inspect ./snapshots/knowledge_snapshot_20260101_120000 --json
    """
    from engine import api

    from .tables import duration, size

    described = api.describe_snapshot(path, identity=identity)
    if as_json:
        emit_json(described)
        return
    if described.get("snapshot_id") is None:
        click.echo(f"bundle:        {path}\nencrypted:     yes ({size(described['bytes'])}); {described.get('note')}")
        return
    click.echo(api.inspect_snapshot(path))
    parent = described.get("parent") or {}
    click.echo(f"on disk:       {size(described['bytes'])}{' (packed)' if described['packed'] else ''}, "
               f"age {duration(described.get('age_seconds'))}")
    signed = {True: "yes (checksums.sha256.asc; run verify to check it)", False: "no", None: "unknown"}
    click.echo(f"signed:        {signed[described['signed']]}; encrypted: {'yes' if described['encrypted'] else 'no'}")
    click.echo(f"parent:        {parent.get('snapshot_id') or '- (a full bundle)'}")


@snapshot.command()
@click.argument("uri", metavar="URI")
@click.option("--base", required=True, type=click.Path(exists=True),
              help="The bundle (full or delta, folder or .tar.zst) the delta builds on.")
@bundle_writing_options
@JSON_OPT
def delta(uri: str, base: str, out_dir: str, artifacts_dir: str | None, pack: bool, compression_level: int,
          source_env: str | None, shard_rows: int | None, as_json: bool) -> None:
    """Write a delta bundle of what changed in the store URI since the bundle --base.

    The delta holds the upserted records, the deleted ids (changes.jsonl) and the added, changed
    or removed artifacts; its manifest names --base as its parent.

    \b
    Example: procos snapshot delta faiss:./kb --base ./snapshots/knowledge_snapshot_20260101_120000 --out ./snapshots
    """
    from engine import api

    emit(api.export_delta(uri, base, out_dir, artifacts_dir=artifacts_dir, pack=pack,
                          compression_level=compression_level, source_env=source_env, shard_rows=shard_rows),
         as_json)


@snapshot.command()
@click.argument("bundle", type=click.Path(exists=True))
@click.option("--out", "out_dir", type=click.Path(file_okay=False),
              help="Folder the migrated bundle is written into [default: the folder holding BUNDLE].")
@SHARD_ROWS_OPT
@JSON_OPT
def migrate(bundle: str, out_dir: str | None, shard_rows: int | None, as_json: bool) -> None:
    """Write a schema_version 2 copy of the schema_version 1 BUNDLE (folder or .tar.zst).

    BUNDLE is verified first and never modified. The copy keeps its snapshot id and creation time,
    splits embeddings.parquet into embeddings/part-NNNNN.parquet shards and records migrated_from.
    Import migrates v1 bundles on its own; this command keeps a migrated copy.

    \b
    Example: procos snapshot migrate ./old/knowledge_snapshot_20250101_000000 --out ./snapshots
    """
    from engine import api

    emit(api.migrate_snapshot(bundle, out_dir, shard_rows=shard_rows), as_json)


@snapshot.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.option("--quick", is_flag=True, help="Read only manifests; skip re-verifying every bundle's checksums.")
@JSON_OPT
def catalog(folder: str, quick: bool, as_json: bool) -> None:
    """Show the lineage of the bundles in FOLDER's snapshot_catalog.jsonl and flag problems.

    Problems: broken chains (a delta whose parent is not catalogued, damaged or gone), missing
    bundles, bundles that fail verification, unreadable catalog lines, uncatalogued bundles.
    Exit code 3 when there is any problem. Leftovers of killed exports and packs are listed with
    their age and whether their writer is alive (the next export removes those whose writer is gone).

    \b
    Example: procos snapshot catalog ./snapshots
    """
    from engine import api

    from .tables import table

    report = api.snapshot_catalog(folder, quick=quick)
    if as_json:
        emit_json(report)
    else:
        click.echo(table(report["bundles"], [
            ("STATUS", lambda b: paint("OK") if b["ok"] else paint("FAILED")), ("KIND", lambda b: b["kind"]),
            ("SNAPSHOT", lambda b: b["snapshot_id"][:8]), ("BUNDLE", lambda b: b["path"]),
            ("CHAIN", lambda b: " <- ".join(reversed([s[:8] for s in b["chain"]])) if b["chain"] else "(broken)")],
            widest=60, empty=f"no catalogued bundles in {folder}"))
        for p in report["problems"]:
            click.echo(f"problem: {p['path'] or '-'}: {p['problem']}")
        for left in report["leftovers"]:
            state = {True: "its writer is still running", False: "its writer is gone (the next export removes it)",
                     None: "its writer cannot be checked from here"}[left["writer_alive"]]
            click.echo(f"leftover {left['kind']}: {left['path']}, {left['age_seconds']:.0f} s old, {state}")
    if not report["ok"]:
        raise SystemExit(VERIFY_FAILED)


@snapshot.command(name="import")
@click.argument("args", nargs=-1, required=True, metavar="BUNDLE [DELTA...] URI")
@click.option("--mode", type=click.Choice(["append", "replace"]), default="append", show_default=True,
              help="append: merge by the conflict rule; replace: the target becomes exactly the bundle (atomic).")
@click.option("--on-conflict", type=click.Choice(["version", "error", "keep", "overwrite"]), default="version",
              show_default=True, help="append mode: which record wins when an id exists (version: higher "
              "version wins, ties keep the stored record).")
@click.option("--dry-run", is_flag=True, help="Verify and show the plan; write nothing.")
@click.option("--require-signature", is_flag=True, help="Refuse a bundle without a good signature by a trusted "
              "key (always on when PROCOS_ENV is prod).")
@TRUSTED_KEY_OPT
@decryption_options
@JOBS_OPT
@JSON_OPT
def import_(args: tuple[str, ...], mode: str, on_conflict: str, dry_run: bool, require_signature: bool,
            trusted_keys: tuple[str, ...], identity: str | None, passphrase_file: str | None, jobs: int | None,
            as_json: bool) -> None:
    """Verify BUNDLE (folder, .tar.zst or encrypted .age), then import it into the store URI.

    With several bundles (a full bundle, then its deltas oldest first) every bundle and the lineage
    are checked first; a gap, fork or wrong order is refused with nothing written.
    A bundle that fails verification writes nothing. A new target is created with the bundle's
    dimensions, metric and index settings. With --require-signature (and always in prod) a bundle
    without a good signature by a trusted key is refused (exit 3) before anything is written; an
    encrypted bundle that does not decrypt is refused the same way.
    With --jobs N, N shards are verified at a time; into a new or empty pgvector store (or with
    --mode replace) the rows also load as N ranges of shards side by side, one connection each,
    and the store still changes in one commit (without --jobs: one connection).

    \b
    Example: procos snapshot import knowledge_snapshot_20260101_120000.age postgresql+embedded:./pg --identity key.txt --require-signature
    """
    from engine import api

    if len(args) < 2:
        raise ProcosError(f"expected BUNDLE [DELTA...] URI, got {len(args)} argument(s)",
                          hint="procos snapshot import knowledge_snapshot_... faiss:./target")
    *bundles, uri = args
    source = bundles[0] if len(bundles) == 1 else list(bundles)
    emit(api.import_snapshot(source, uri, mode=mode, on_conflict=on_conflict, dry_run=dry_run,
                             require_signature=require_signature, trusted_keys=list(trusted_keys),
                             identity=identity, passphrase_file=passphrase_file,
                             **({"jobs": jobs} if len(bundles) == 1 else {})), as_json)


from .remote import add_remote_commands  # noqa: E402 - push, pull, list, abort-incomplete, prune

add_remote_commands(snapshot)
