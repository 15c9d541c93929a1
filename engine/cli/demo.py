"""``procos demo``: the quick lift-and-shift playbook on embedded defaults (the command to run first)."""

from __future__ import annotations

import click

from .output import JSON_OPT, emit_json


@click.command()
@click.option("--dir", "folder", type=click.Path(file_okay=False),
              help="Folder for everything the demo makes (new or empty; default: ./procos-demo-<UTC time>).")
@click.option("--count", type=click.IntRange(min=1), default=2_000, show_default=True, help="Records to seed.")
@click.option("--dim", type=click.IntRange(min=1), default=64, show_default=True, help="Vector dimensions.")
@JSON_OPT
def demo(folder: str | None, count: int, dim: int, as_json: bool) -> None:
    """Seed a FAISS store, export it (BPMN export_snapshot, dev), import the bundle into embedded
    pgvector (import_snapshot), validate (validate_snapshot), check drift, and report PASS or FAIL.

    Exit code 0 only when everything passed (4 when a check failed).

    \b
    Example: procos demo --dir ./demo
    """
    from engine.api.processes import render_demo, run_demo

    report = run_demo(folder, count=count, dim=dim)
    if as_json:
        emit_json(report)
    else:
        click.echo(render_demo(report), nl=False)
    if not report["passed"]:
        raise SystemExit(4)  # a check failed
