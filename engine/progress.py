"""Progress of long operations, reported from deep inside the library without threading a callback through.

Library code calls :func:`update` (``update("export", rows_done, rows_total, "rows")``) as it works; it
costs almost nothing when nobody listens. Whoever runs the operation decides where updates go by
installing a sink for the duration (:func:`reporting`): the CLI draws a progress bar on a terminal or
writes one JSON object per update to stderr (``--progress json``); the workflow runner records the
current step's progress with the instance, so ``instance show`` and the panel can show rows done.

Every sink receives ``{"op", "done", "total", "unit", "rate", "eta_seconds"}``; updates are throttled
(``min_interval`` seconds, default 0.5) except the last one of an operation (``done == total``).
"""

from __future__ import annotations

import contextlib
import contextvars
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

Sink = Callable[[dict[str, Any]], None]


@dataclass
class _Reporter:
    sink: Sink
    min_interval: float
    started: dict[str, tuple[float, int]] = field(default_factory=dict)  # op -> (start time, start done)
    last: dict[str, float] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)  # workers of one operation report together

    def update(self, op: str, done: int, total: int | None, unit: str) -> None:
        with self.lock:
            self._update(op, done, total, unit)

    def _update(self, op: str, done: int, total: int | None, unit: str) -> None:
        now = time.monotonic()
        first_time, first_done = self.started.setdefault(op, (now, done))
        finished = total is not None and done >= total
        if not finished and now - self.last.get(op, 0.0) < self.min_interval:
            return
        self.last[op] = now
        elapsed = now - first_time
        rate = (done - first_done) / elapsed if elapsed > 0 else None
        eta = (total - done) / rate if rate and total is not None and total > done else (0.0 if finished else None)
        self.sink({"op": op, "done": int(done), "total": None if total is None else int(total), "unit": unit,
                   "rate": round(rate, 1) if rate else None, "eta_seconds": None if eta is None else round(eta, 1)})


_CURRENT: contextvars.ContextVar[_Reporter | None] = contextvars.ContextVar("procos_progress", default=None)


def update(op: str, done: int, total: int | None = None, unit: str = "rows") -> None:
    """Report that ``op`` has done ``done`` of ``total`` ``unit`` (a no-op when nobody listens)."""
    reporter = _CURRENT.get()
    if reporter is not None:
        try:
            reporter.update(op, done, total, unit)
        except Exception:  # noqa: BLE001 - a broken progress display must never break the operation
            _CURRENT.set(None)


@contextlib.contextmanager
def reporting(sink: Sink | None, min_interval: float = 0.5) -> Iterator[None]:
    """Send the updates made inside to ``sink`` (None: drop them)."""
    token = _CURRENT.set(_Reporter(sink, min_interval) if sink is not None else None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def counted(batches: Any, op: str, total: int | None, unit: str = "rows") -> Iterator[Any]:
    """Yield ``batches`` unchanged, reporting the rows consumed so far after each one."""
    done = 0
    update(op, 0, total, unit)
    for batch in batches:
        yield batch
        done += len(batch)
        update(op, done, total, unit)
