"""Where a command's progress goes: a bar on a terminal, JSON lines for scripts, or nowhere.

``--progress auto`` (the default) draws a rich progress bar with rows/s and the ETA on stderr when
stderr is a terminal (and -q is not given), and prints nothing otherwise; ``--progress json`` writes
one JSON object per update to stderr, ``{"op", "done", "total", "unit", "rate", "eta_seconds"}``
(the panel and scripts read these); ``--progress bar`` forces the bar; ``--progress none`` is silent.
The library reports through ``engine.progress`` and never knows which sink listens.
"""

from __future__ import annotations

import json
import sys
from contextlib import contextmanager
from typing import Any

import click

MODES = ("auto", "bar", "json", "none")


def _set(ctx: click.Context, param: click.Parameter, value: str | None) -> None:
    if value is not None:
        root = ctx.find_root()
        root.ensure_object(dict)
        root.obj["progress"] = value


PROGRESS = click.Option(["--progress", "progress_mode"], type=click.Choice(MODES), default=None, expose_value=False,
                        callback=_set, is_eager=True,
                        help="Progress of long steps on stderr: auto (a bar on a terminal), bar, json (one "
                             "JSON object per update), none.")


def json_sink(update: dict[str, Any]) -> None:
    sys.stderr.write(json.dumps(update, sort_keys=True) + "\n")
    sys.stderr.flush()


class BarSink:
    """One rich progress bar per operation, on stderr."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.progress = Progress(TextColumn("{task.description:<8}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}"),
                                 TextColumn("ETA {task.fields[eta]}"), console=Console(stderr=True),
                                 transient=False)
        self.tasks: dict[str, Any] = {}

    def __call__(self, update: dict[str, Any]) -> None:
        op, unit = update["op"], update["unit"]
        rate = f"{update['rate']:,.0f} {unit}/s" if update.get("rate") else ""
        eta = f"{update['eta_seconds']:.0f} s" if update.get("eta_seconds") is not None else "-"
        total = update.get("total")
        counts = f"{update['done']:,}/{total:,} {unit}" if total is not None else f"{update['done']:,} {unit}"
        fields = {"rate": rate, "eta": eta, "counts": counts}
        if op not in self.tasks:
            self.tasks[op] = self.progress.add_task(op, total=total, **fields)
        self.progress.update(self.tasks[op], completed=update["done"], total=total, **fields)

    def __enter__(self) -> BarSink:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()


@contextmanager
def progress_sink(mode: str | None, quiet: bool):
    """Install the sink ``mode`` names for the duration of a command."""
    from engine.api import report_progress

    mode = mode or "auto"
    if mode == "auto":
        mode = "bar" if not quiet and hasattr(sys.stderr, "isatty") and sys.stderr.isatty() else "none"
    if mode == "json":
        with report_progress(json_sink, min_interval=0.5):
            yield
    elif mode == "bar":
        with BarSink() as bar, report_progress(bar, min_interval=0.2):
            yield
    else:
        yield
