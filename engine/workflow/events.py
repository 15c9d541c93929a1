"""Events: appended to ``PROCOS_HOME/events.jsonl`` and the state DB, and POSTed to a webhook.

Each event is one JSON object with at least ``event``, ``instance_id`` and ``time``. When
``PROCOS_WEBHOOK_URL`` is set it is POSTed as JSON, retried with backoff; a webhook that stays down
does not fail the process (the event is still in events.jsonl and the DB, and the failed delivery is
reported back to the caller so it lands in the instance's history).
"""

from __future__ import annotations

import time

from engine.errors import WorkflowError
from engine.events import EVENTS, append_line

from .settings import Settings
from .store import InstanceStore, now_iso

WEBHOOK_TIMEOUT = 5.0
BACKOFF = (0.2, 0.5, 1.0, 2.0)


def make_event(name: str, instance_id: str | None, fields: dict | None = None) -> dict:
    if name not in EVENTS:
        raise WorkflowError(f"unknown event {name!r}", hint="one of: " + ", ".join(sorted(EVENTS)))
    reserved = {"event", "instance_id", "time"} & set(fields or {})
    if reserved:
        raise WorkflowError(f"event {name!r}: fields {sorted(reserved)} are set by the engine")
    return {"event": name, "instance_id": instance_id, "time": now_iso(), **(fields or {})}


def emit(settings: Settings, store: InstanceStore, event: dict) -> str | None:
    """Record ``event`` everywhere; return a problem description if the webhook could not take it."""
    append_line(settings.events_path, event)  # one write per line (engine.events)
    store.add_event(event)
    if settings.webhook_url:
        return post_webhook(settings.webhook_url, event, settings.webhook_attempts)
    return None


def post_webhook(url: str, event: dict, attempts: int) -> str | None:
    import requests

    problem = None
    for attempt in range(max(1, attempts)):
        try:
            response = requests.post(url, json=event, timeout=WEBHOOK_TIMEOUT)
            if response.status_code < 300:
                return None
            problem = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break  # the receiver refuses this event; retrying will not help
        except requests.RequestException as exc:
            problem = str(exc)
        if attempt + 1 < attempts:
            time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    from engine.repository.uri import redact

    return f"webhook {redact(url)} did not accept event {event['event']!r}: {problem}"
