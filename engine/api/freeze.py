"""The freeze flag at the front door: an operator's pause, and leased freezes held by this process.

``pause_ingestion(uri)`` is the operator's pause (``procos store pause``): no holder, no expiry,
cleared only by ``resume_ingestion(uri)``. ``pause_ingestion(uri, holder={...})`` takes a *leased*
freeze held by the calling process: the holder record is this process's identity (host, boot,
pid, start time) plus the fields given (a workflow step gives ``{"instance_id": ID}``, see
:func:`freeze_holder`), and a thread of this process renews the lease until
``resume_ingestion(uri, holder=...)`` runs here or the process ends. A runner that dies leaves the
freeze stale: the next writer or export clears it, and :func:`store_stats` reports it as
``"stale": true``. :func:`renew_pause` lets a later step (possibly in a new runner, after
``instance retry``) check that it still holds the freeze and take the renewal over.
"""

from __future__ import annotations

import threading
from typing import Any

from engine.repository import freeze

from .stores import opened

IDENTITY = ("host", "boot_id", "pid", "started")
_keepers: dict[tuple[str, str], freeze.LeaseKeeper] = {}
_keepers_lock = threading.Lock()


def freeze_holder(instance_id: str | None = None, **fields: Any) -> dict[str, Any]:
    """The holder record of a freeze taken by this process (for a workflow step: its instance id)."""
    extra = {k: v for k, v in fields.items() if k not in IDENTITY}
    if instance_id is not None:
        extra["instance_id"] = str(instance_id)
    return freeze.holder(**extra)


def _as_this_process(holder: dict[str, Any]) -> dict[str, Any]:
    return freeze_holder(**{k: v for k, v in holder.items() if k not in IDENTITY})


def _key(uri: str, holder: dict[str, Any]) -> tuple[str, str]:
    return uri, str(holder.get("instance_id") or holder.get("pid"))


def _keep(uri: str | None, holder: dict[str, Any], lease_seconds: float) -> None:
    """Start renewing ``holder``'s lease from this process (once per store and holder)."""
    key = _key(str(uri), holder)
    with _keepers_lock:
        running = _keepers.get(key)
        if running is not None and not running.lost.is_set():
            return

        def renew() -> bool:
            with opened(uri) as repo:
                return repo.renew_pause(holder, lease_seconds)

        _keepers[key] = freeze.LeaseKeeper(renew, lease_seconds * freeze.RENEW_FRACTION).start()


def _drop(uri: str | None, holder: dict[str, Any]) -> None:
    with _keepers_lock:
        keeper = _keepers.pop(_key(str(uri), holder), None)
    if keeper is not None:
        keeper.stop()


def pause_ingestion(uri: str | None, *, holder: dict[str, Any] | None = None,
                    lease_seconds: float | None = None) -> dict[str, Any]:
    """Set the store's freeze flag: an operator's pause, or (with ``holder``) a leased freeze held by this process.

    ``lease_seconds`` defaults to 60 for a leased freeze. Returns ``{"uri", "paused", "acquired",
    "stale", "held_by", "lease_expires", "cleared_stale"}``: ``acquired`` says whether the caller holds
    the freeze now (False when a live other holder or an operator's pause already froze the store,
    which is left as it was); ``cleared_stale`` is the holder of a stale freeze this call replaced.
    """
    if holder is not None:
        holder = _as_this_process(holder)
        lease_seconds = freeze.DEFAULT_LEASE if lease_seconds is None else lease_seconds
    with opened(uri) as repo:
        before = repo.pause_ingestion(holder, lease_seconds)
        acquired = freeze.may_pause(before, holder)
        if before.stale:
            freeze.note_cleared(repo.uri, before, "a new freeze")
        state = repo.freeze_state()
        result = {"uri": repo.uri, **state.to_json(), "acquired": acquired,
                  "cleared_stale": before.held_by if before.stale else None}
    if holder is not None and acquired:
        _keep(uri, holder, float(lease_seconds))
    return result


def renew_pause(uri: str | None, holder: dict[str, Any], lease_seconds: float = freeze.DEFAULT_LEASE
                ) -> dict[str, Any]:
    """Check that ``holder`` still holds the store's freeze and renew it from this process.

    Returns ``{"uri", "held", ...the flag}``. ``held`` False means the freeze was lost (cleared as
    stale, by an operator, or taken by another holder): the caller must not assume the store is frozen.
    """
    holder = _as_this_process(holder)
    with opened(uri) as repo:
        held = repo.renew_pause(holder, lease_seconds)
        result = {"uri": repo.uri, "held": held, **repo.freeze_state().to_json()}
    if held:
        _keep(uri, holder, float(lease_seconds))
    else:
        _drop(uri, holder)
    return result


def resume_ingestion(uri: str | None, *, holder: dict[str, Any] | None = None) -> dict[str, Any]:
    """Clear the store's freeze flag: any freeze (the operator's resume), or with ``holder`` only its own.

    Returns ``{"uri", "paused", "cleared", ...the flag}``; ``cleared`` says whether this call cleared it.
    """
    if holder is not None:
        holder = _as_this_process(holder)
        _drop(uri, holder)
    with opened(uri) as repo:
        before = repo.resume_ingestion(holder)
        state = repo.freeze_state()
        return {"uri": repo.uri, **state.to_json(), "cleared": freeze.may_resume(before, holder)}


def is_paused(uri: str | None) -> bool:
    """Whether the store's freeze flag is set (stale or not)."""
    with opened(uri) as repo:
        return repo.is_paused()
