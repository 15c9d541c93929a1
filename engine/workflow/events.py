"""Events of process instances: appended to ``PROCOS_HOME/events.jsonl`` and the state DB, and POSTed.

Each event is one JSON object with at least ``event``, ``event_id``, ``instance_id`` and ``time`` (built
and delivered by :mod:`engine.events`, which the library uses too). A process event's ``event_id`` comes
from the instance, the step (the Spiff task), the attempt (user retries) and the n-th emit of that name in
the step, so a step that runs again after a crash emits the same ids. A webhook that stays down does not
fail the process: the event is still in events.jsonl and the DB, and the failed delivery is
reported back to the caller so it lands in the instance's history.
"""

from __future__ import annotations

from engine import events
from engine.events import event_id_for

__all__ = ["emit", "event_id_for", "make_event"]
from engine.errors import InvalidInput, WorkflowError

from .settings import Settings
from .store import InstanceStore


def make_event(name: str, instance_id: str | None, fields: dict | None = None, *,
               event_id: str | None = None) -> dict:
    """The event record; an unknown name or a reserved field fails the task with a WorkflowError."""
    try:
        return events.make_event(name, instance_id, fields, event_id=event_id)
    except InvalidInput as exc:
        raise WorkflowError(exc.message, hint=exc.hint) from exc


def emit(settings: Settings, store: InstanceStore, event: dict) -> str | None:
    """Record ``event`` everywhere; return a problem description if the webhook could not take it."""
    events.append_line(settings.events_path, event)
    store.add_event(event)
    if settings.webhook_url:
        return events.post_webhook(settings.webhook_url, event, settings.webhook_attempts)
    return None
