"""Point in time: which bundles of a location give a store's state at a moment (plan only, no I/O).

Each bundle of a location (``snapshot list`` entries) is placed in time by ``as_of_utc`` (when its export
had finished reading the store: it holds no later change), else by ``created_utc`` for bundles written
before ``as_of_utc`` existed. The state at ``at`` is the newest full bundle at or before it, followed by
its chain of deltas (each delta's parent is the bundle before it) as long as they are at or before ``at``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from engine.errors import InvalidInput, LineageError


def parse_time(text: str | datetime) -> datetime:
    """An ISO 8601 time (UTC when it has no offset) as an aware UTC datetime; InvalidInput otherwise."""
    if isinstance(text, datetime):
        when = text
    else:
        try:
            when = datetime.fromisoformat(str(text).strip().replace("Z", "+00:00"))
        except ValueError:
            raise InvalidInput(f"{text!r} is not an ISO 8601 time",
                               hint="give a time such as 2026-01-31T12:00:00Z (UTC when it has no offset)") from None
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def when_of(entry: dict[str, Any]) -> datetime:
    return parse_time(entry.get("as_of_utc") or entry["created_utc"])


def newest_chain(entries: list[dict[str, Any]], at: datetime | None = None, *,
                 store_id: str | None = None) -> list[dict[str, Any]]:
    """The bundles whose chain gives the state at ``at`` (None: the newest state), full bundle first."""
    usable = [e for e in entries if e.get("snapshot_id") and e.get("kind") in ("full", "delta")
              and (store_id is None or e.get("store_id") == store_id) and (at is None or when_of(e) <= at)]
    fulls = sorted((e for e in usable if e["kind"] == "full"), key=lambda e: (when_of(e), e.get("sequence") or 0))
    if not fulls:
        oldest = min((when_of(e) for e in entries if e.get("kind") == "full"), default=None)
        where = f"; the oldest full bundle is from {oldest.isoformat()}" if oldest else "; it holds no full bundle"
        raise InvalidInput(f"no full bundle at or before {at.isoformat() if at else 'now'}{where}",
                           hint="pick a later --at, or ship a full bundle first (procos replicate)")
    chain = [fulls[-1]]
    while True:
        tip = chain[-1]
        children = [e for e in usable if e["kind"] == "delta" and (e.get("parent") or {}).get("snapshot_id")
                    == tip["snapshot_id"] and (e.get("parent") or {}).get("content_hash") in (None, tip.get("content_hash"))]
        if not children:
            return chain
        if len(children) > 1:
            names = ", ".join(sorted(c["name"] for c in children))
            raise LineageError(f"the chain forks after {tip['name']}: {names} all build on it",
                               hint="remove the bundles of the branch you do not want (procos snapshot catalog)")
        chain.append(children[0])


def tip_of(entries: list[dict[str, Any]], store_id: str) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """``(newest bundle of the store's newest chain, that chain's full bundle)``, or (None, None)."""
    try:
        chain = newest_chain(entries, None, store_id=store_id)
    except InvalidInput:
        return None, None
    return chain[-1], chain[0]
