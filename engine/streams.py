"""Bounded prefetch: pull an iterator in a background thread so producing and consuming overlap.

Used wherever one side of a pipeline is CPU work in Python and the other waits on I/O or on native
code that releases the GIL (a store read next to Parquet writing; Parquet reading and COPY encoding
next to PostgreSQL loading). The queue between them holds at most ``depth`` items, so memory stays
bounded. The producer runs in a copy of the caller's context (progress reported there still reaches
the caller's sink).
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Iterator


def prefetch(batches: Iterator, depth: int = 2) -> Iterator:
    """Pull ``batches`` in a background thread (store reads overlap Parquet writes); bounded queue."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def pump() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            q.put(("end", done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            q.put(("error", exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    context = contextvars.copy_context()
    worker = threading.Thread(target=context.run, args=(pump,), name="prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()
