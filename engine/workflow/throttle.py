"""Rate limits on failed panel logins, per user name and per client address, kept in the state database.

A login is refused without looking at the password while the user name has :data:`USER_LIMIT` failed
logins within :data:`WINDOW_SECONDS`, or the client address has :data:`CLIENT_LIMIT` (a client guessing
across many names). Failures are rows of the ``login_failures`` table, so restarting the panel (or
running several) resets nothing; each refusal is audited. A correct login clears the user's own count
(never the client's); failures older than the window are forgotten when next looked at.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from engine.errors import LoginThrottled

WINDOW_SECONDS = 15 * 60
USER_LIMIT = 5
CLIENT_LIMIT = 20


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def keys(name: str, client: str | None) -> list[str]:
    return [f"user:{name}", *([f"client:{client}"] if client else [])]


def check(store, name: str, client: str | None, now: datetime | None = None) -> None:
    """Raise LoginThrottled when ``name`` or ``client`` has too many recent failures."""
    now = now or datetime.now(UTC)
    since = _iso(now - timedelta(seconds=WINDOW_SECONDS))
    for key in keys(name, client):
        store.clear_login_failures(key, before=since)
        times = store.login_failures(key, since)
        limit = USER_LIMIT if key.startswith("user:") else CLIENT_LIMIT
        if len(times) >= limit:
            oldest = datetime.fromisoformat(times[-limit].replace("Z", "+00:00"))
            free = oldest + timedelta(seconds=WINDOW_SECONDS)
            minutes = max(1, int((free - now).total_seconds() // 60) + 1)
            who = f"user {name!r}" if key.startswith("user:") else f"this client ({client})"
            raise LoginThrottled(
                f"too many failed logins for {who}: {len(times)} in the last {WINDOW_SECONDS // 60} minutes; "
                f"logins are refused until {_iso(free)}",
                hint=f"try again in about {minutes} minute(s), or ask an administrator to set a new password "
                     f"(procos user passwd {name})")


def failed(store, name: str, client: str | None, now: datetime | None = None) -> None:
    store.add_login_failure(keys(name, client), _iso(now or datetime.now(UTC)))


def succeeded(store, name: str) -> None:
    store.clear_login_failures(f"user:{name}")
