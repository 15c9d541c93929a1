"""The freeze flag's two kinds, what makes one stale, and the thread that keeps a lease alive.

A store's freeze flag is stored in the store (FAISS: the ``state`` row of ``store.sqlite``;
pgvector: the store's row of ``procos_store_state``) as three values: ``paused``, ``held_by`` (an
owner record, see :mod:`engine.owner`) and ``lease_expires`` (seconds since the epoch).

- An **operator's pause** (``procos store pause``) has no holder and no expiry. Nobody but
  ``resume_ingestion()`` clears it; it is never stale.
- A **leased freeze** (``snapshot export --freeze``, the export process's "Set the freeze flag"
  step) records its holder and an expiry that the holder renews while it works (:class:`LeaseKeeper`:
  a 60 s lease renewed every 15 s). It is *stale* when its holder is gone (same host: no process with
  that pid and start time) or its lease expired (any host; clocks are assumed roughly in step).
  The next writer or export clears a stale freeze (and logs it), and proceeds.

Holders match (:func:`same_holder`) by process instance when both name one (``instance_id``: a
retried instance takes its freeze over from its dead runner), else by process.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from engine import owner

DEFAULT_LEASE = 60.0
RENEW_FRACTION = 0.25  # renew every lease/4 (15 s of a 60 s lease)
log = logging.getLogger("engine.repository.freeze")


@dataclass(frozen=True)
class Freeze:
    """A store's freeze flag as read at one moment; ``stale`` was decided at that moment."""

    paused: bool
    held_by: dict[str, Any] | None = None
    lease_expires: float | None = None
    stale: bool = False

    @property
    def leased(self) -> bool:
        return self.paused and self.held_by is not None

    def to_json(self) -> dict[str, Any]:
        """``{"paused", "stale", "held_by", "lease_expires"}`` (``lease_expires`` as UTC ISO text)."""
        expires = None
        if self.lease_expires is not None:
            expires = datetime.fromtimestamp(self.lease_expires, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {"paused": self.paused, "stale": self.stale, "held_by": self.held_by, "lease_expires": expires}


def read(paused: bool, held_by: dict[str, Any] | None, lease_expires: float | None,
         now: float | None = None) -> Freeze:
    """The :class:`Freeze` of stored values, with its staleness decided now."""
    if not paused:
        return Freeze(False)
    return Freeze(True, held_by, lease_expires, is_stale(held_by, lease_expires, now))


def is_stale(held_by: dict[str, Any] | None, lease_expires: float | None, now: float | None = None) -> bool:
    """Whether a set freeze may be cleared by anyone: its holder is gone or its lease expired.

    An operator's pause (no holder) is never stale.
    """
    if held_by is None:
        return False
    if lease_expires is not None and (time.time() if now is None else now) > lease_expires:
        return True
    return owner.alive(held_by) is False


def same_holder(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether ``a`` and ``b`` are the same holder: the same process instance, else the same process."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    if a.get("instance_id") or b.get("instance_id"):
        return a.get("instance_id") == b.get("instance_id")
    return owner.same_process(a, b)


def may_pause(before: Freeze, holder: dict[str, Any] | None) -> bool:
    """Whether ``pause_ingestion(holder)`` sets the flag over ``before``.

    An operator's pause always does (it replaces a leased freeze: the operator's word wins). A
    leased freeze does over a clear flag, a stale freeze, or its own freeze (a renewal).
    """
    if holder is None:
        return True
    return not before.paused or before.stale or same_holder(before.held_by, holder)


def may_resume(before: Freeze, holder: dict[str, Any] | None, stale_only: bool = False) -> bool:
    """Whether ``resume_ingestion(holder, stale_only=...)`` clears ``before``.

    ``stale_only``: only a stale freeze. A holder: only its own freeze. Neither: any freeze (the
    operator's resume).
    """
    if not before.paused:
        return False
    if stale_only:
        return before.stale
    return holder is None or same_holder(before.held_by, holder)


def holder(**fields: Any) -> dict[str, Any]:
    """A holder record for the calling process (``kind="export"``, ``instance_id=...``)."""
    return owner.this_process(**fields)


def expiry(lease_seconds: float | None) -> float | None:
    return None if lease_seconds is None else time.time() + float(lease_seconds)


def check_lease(held_by: dict[str, Any] | None, lease_seconds: float | None) -> None:
    """A holder and a lease go together: an operator's pause has neither."""
    if (held_by is None) != (lease_seconds is None):
        raise ValueError("pause_ingestion: give both holder and lease_seconds (a leased freeze) or neither "
                         "(an operator's pause)")
    if lease_seconds is not None and not lease_seconds > 0:
        raise ValueError(f"lease_seconds must be positive, got {lease_seconds!r}")


def note_cleared(where: str, stale: Freeze, by: str) -> str:
    """Log (and return) the audit line of a stale freeze cleared by ``by``."""
    message = (f"cleared a stale freeze of {where} held by {owner.describe(stale.held_by)} "
               f"(holder gone or lease expired) before {by}")
    log.warning("%s", message)
    return message


class LeaseKeeper:
    """A daemon thread that calls ``renew()`` every ``interval`` seconds until stopped.

    ``renew`` returns whether the freeze is still held; when it is not (cleared by an operator or
    taken over), the keeper stops and :attr:`lost` is set. A renewal that raises is logged and
    retried at the next tick (a lease outlives a few missed renewals).
    """

    def __init__(self, renew: Callable[[], bool], interval: float, name: str = "procos-lease") -> None:
        self._renew = renew
        self._interval = interval
        self._stop = threading.Event()
        self.lost = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                held = self._renew()
            except Exception as exc:  # noqa: BLE001 - logged; the lease covers a few missed renewals
                log.warning("renewing a freeze lease failed (will retry): %s", exc)
                continue
            if not held:
                log.warning("the freeze this process held was cleared or taken over; no longer renewing it")
                self.lost.set()
                return

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=self._interval + 5)
