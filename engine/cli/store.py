"""``procos store``: seed, inspect, query, pause and resume a vector store (thin shells over engine.api)."""

from __future__ import annotations

import json
from typing import Any

import click

from engine.errors import InvalidFilter

from .output import JSON_OPT, emit_fields, emit_json

URI_ARG = click.argument("uri", required=False, metavar="[URI]")


@click.group()
def store() -> None:
    """Work with one vector store (URI omitted: $VECTOR_ENDPOINT).

    \b
    Example: procos store stats faiss:./kb --json
    """


@store.command()
@URI_ARG
@click.option("--count", "-n", type=click.IntRange(min=0), required=True, help="Records to load.")
@click.option("--dim", "-d", type=click.IntRange(min=1), required=True, help="Vector dimensions.")
@click.option("--seed", "seed_", type=int, default=0, show_default=True, help="Random seed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=10_000, show_default=True,
              help="Records per bulk batch.")
@click.option("--artifacts/--no-artifacts", default=True, show_default=True,
              help="Also write the synthetic knowledge artifacts (BPMN, prompts, ...).")
@JSON_OPT
def seed(uri: str | None, count: int, dim: int, seed_: int, batch_size: int, artifacts: bool,
         as_json: bool) -> None:
    """Bulk-load COUNT deterministic synthetic records of DIM dimensions into the store.

    The same --seed always gives the same records (ids rec-0000001, ...), so seeding twice
    rewrites the same rows.

    \b
    Example: procos store seed faiss:./source --count 5000 --dim 128
    """
    from engine import api

    result = api.seed_store(uri, count, dim, seed_, artifacts=artifacts, batch_size=batch_size)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"Seeded {result['written']} records ({result['skipped']} skipped) and "
                   f"{result['artifacts']} artifacts into {result['uri']} in {result['seconds']} s; "
                   f"the store now holds {result['count']} records.")


@store.command()
@URI_ARG
@JSON_OPT
def stats(uri: str | None, as_json: bool) -> None:
    """Show the store's backend, record count, dimensions, metric, index, pause flag and sequence.

    \b
    Example: procos store stats postgresql+embedded:./target-pg --json
    """
    from engine import api

    result = api.store_stats(uri)
    if as_json:
        emit_json(result)
    else:
        emit_fields(result)


def parse_filter(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise InvalidFilter(f"--filter is not valid JSON: {exc}",
                            hint='quote it for the shell: --filter \'{"lang": "en"}\'') from exc
    if not isinstance(value, dict):
        raise InvalidFilter("--filter must be a JSON object",
                            hint='write it like {"lang": "en"} or {"lang": {"$in": ["en", "de"]}}')
    return value


@store.command()
@URI_ARG
@click.option("--id", "record_id", help="Query with the stored vector of this record.")
@click.option("--vector-file", type=click.Path(dir_okay=False),
              help="Query with the vector in this file (.npy, or a JSON list of numbers).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True,
              help="Number of nearest records.")
@click.option("--filter", "filter_text", metavar="JSON",
              help='Only records whose metadata match, e.g. \'{"lang": {"$in": ["en", "de"]}}\'.')
@JSON_OPT
def query(uri: str | None, record_id: str | None, vector_file: str | None, k: int,
          filter_text: str | None, as_json: bool) -> None:
    """Find the K nearest records to a stored record (--id) or to a vector (--vector-file).

    Scores are distances: lower is closer.

    \b
    Example: procos store query faiss:./source --id rec-0000042 -k 5
    """
    from engine import api

    if (record_id is None) == (vector_file is None):
        raise click.UsageError("give exactly one of --id and --vector-file")
    filters = parse_filter(filter_text)
    vector = api.load_query_vector(vector_file) if vector_file is not None else None
    hits = api.query_store(uri, record_id=record_id, vector=vector, k=k, filters=filters)
    rows = [{"id": h.id, "score": float(h.score), "metadata": h.metadata} for h in hits]
    if as_json:
        emit_json({"hits": rows})
        return
    if not rows:
        click.echo("No matching records.")
    width = max((len(r["id"]) for r in rows), default=2)
    for r in rows:
        click.echo(f"{r['id']:<{width}}  {r['score']:.6f}  {json.dumps(r['metadata'], sort_keys=True)}")


@store.command()
@URI_ARG
@JSON_OPT
def pause(uri: str | None, as_json: bool) -> None:
    """Set the store's freeze flag: every process's writes are refused until resume.

    \b
    Example: procos store pause faiss:./source
    """
    from engine import api

    result = api.pause_ingestion(uri)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"Ingestion into {result['uri']} is paused.")


@store.command()
@URI_ARG
@JSON_OPT
def resume(uri: str | None, as_json: bool) -> None:
    """Clear the store's freeze flag so writes are accepted again.

    \b
    Example: procos store resume faiss:./source
    """
    from engine import api

    result = api.resume_ingestion(uri)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"Ingestion into {result['uri']} is resumed.")


@store.command(name="wait-index")
@URI_ARG
@click.option("--timeout", type=click.FloatRange(min=0), default=None,
              help="Give up waiting after this many seconds (exit 75 when the index is still building).")
@JSON_OPT
def wait_index(uri: str | None, timeout: float | None, as_json: bool) -> None:
    """Block until the store's HNSW index is ready (queries answer exactly, by a scan, until then).

    An import into an HNSW pgvector store commits the rows first and then builds the index with
    CREATE INDEX CONCURRENTLY; this follows that build (procos store stats shows "index_build").
    When nobody is building it and it is missing or invalid (a build that died), it is built here.

    \b
    Example: procos store wait-index postgresql+embedded:./target-pg --json
    """
    from engine import api

    result = api.wait_index(uri, timeout=timeout)
    state = result["index_build"]
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{result['uri']}: index {state['state']} ({state['percent']}%) after {result['seconds']} s")
    if state["state"] != "ready":
        raise SystemExit(75)
