"""Where a command's progress goes: a bar on a terminal, JSON lines for scripts, or nowhere.

``--progress auto`` (the default) draws a rich progress bar with rows/s and the ETA on stderr when
stderr is a terminal (and -q, NO_COLOR and TERM=dumb are not given), and prints nothing otherwise; ``--progress json`` writes
one JSON object per update to stderr, ``{"op", "done", "total", "unit", "rate", "eta_seconds"}``
(the panel and scripts read these); ``--progress bar`` forces the bar; ``--progress none`` is silent.
The library reports through ``engine.progress`` and never knows which sink listens.
"""

from __future__ import annotations

import io
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
    """One rich progress bar per operation, on stderr.

    The bar starts with the first update (a command that reports no progress, or prompts, is left
    alone); while it runs, what the command prints to stdout is held back and written when the bar
    stops, so the result never lands inside the bar's lines.
    """

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn

        self.progress = Progress(TextColumn("{task.description:<8}"), BarColumn(), TaskProgressColumn(),
                                 TextColumn("{task.fields[counts]}"), TextColumn("{task.fields[rate]}"),
                                 TextColumn("ETA {task.fields[eta]}"), console=Console(stderr=True),
                                 transient=False, redirect_stdout=False, redirect_stderr=False)
        self.tasks: dict[str, Any] = {}
        self.started = False
        self._stdout: Any = None
        self._held = io.StringIO()

    def __call__(self, update: dict[str, Any]) -> None:
        if not self.started:
            self.started = True
            self._stdout, sys.stdout = sys.stdout, self._held
            self.progress.start()
        op, unit = update["op"], update["unit"]
        scale, shown = (1e6, "MB") if unit == "bytes" else (1, unit)
        rate = f"{update['rate'] / scale:,.0f} {shown}/s" if update.get("rate") else ""
        eta = f"{update['eta_seconds']:.0f} s" if update.get("eta_seconds") is not None else "-"
        total = update.get("total")
        done = update["done"] / scale
        counts = f"{done:,.0f}/{total / scale:,.0f} {shown}" if total is not None else f"{done:,.0f} {shown}"
        fields = {"rate": rate, "eta": eta, "counts": counts}
        if op not in self.tasks:
            self.tasks[op] = self.progress.add_task(op, total=total, **fields)
        self.progress.update(self.tasks[op], completed=update["done"], total=total, **fields)

    def __enter__(self) -> BarSink:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.started:
            self.progress.stop()
            sys.stdout = self._stdout
            sys.stdout.write(self._held.getvalue())
            sys.stdout.flush()


def _animated_terminal() -> bool:
    """Whether stderr is a terminal that takes a drawn bar: not with NO_COLOR (the bar's escape codes
    are what NO_COLOR users ask to be spared) or TERM=dumb."""
    import os

    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(sys.stderr, "isatty") and sys.stderr.isatty()


@contextmanager
def progress_sink(mode: str | None, quiet: bool):
    """Install the sink ``mode`` names for the duration of a command."""
    from engine.api import report_progress

    mode = mode or "auto"
    if mode == "auto":
        mode = "bar" if not quiet and _animated_terminal() else "none"
    if mode == "json":
        with report_progress(json_sink, min_interval=0.5):
            yield
    elif mode == "bar":
        with BarSink() as bar, report_progress(bar, min_interval=0.2):
            yield
    else:
        yield
