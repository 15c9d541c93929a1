"""Library-level events: one JSON line in ``PROCOS_HOME/events.jsonl``, and a webhook POST.

The library (drift checks run from the CLI or a scheduler) emits events without the workflow
package: :func:`emit_event` appends ``{"event", "event_id", "instance_id", "time", ...}`` to
``$PROCOS_HOME/events.jsonl`` and, when ``PROCOS_WEBHOOK_URL`` is set,
POSTs it as JSON with a few retries. Emitting never raises: a problem is logged and returned, so
a failed delivery never hides the result that caused the event. The workflow engine uses
:func:`append_line` for its own events.jsonl writes (and adds the state DB and its history).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput

log = logging.getLogger(__name__)

EVENTS = frozenset({
    "snapshot_exported", "import_ready", "validation_passed", "validation_failed",
    "vector_drift_detected", "dr_drill_completed", "process_failed", "approval_rejected", "instance_finished",
    "cutover_completed",
})
RESERVED = frozenset({"event", "event_id", "instance_id", "time"})
WEBHOOK_TIMEOUT = 5.0
WEBHOOK_ATTEMPTS = 3
BACKOFF = (0.2, 0.5, 1.0, 2.0)


def now_iso() -> str:
    """The current UTC time as ``2024-05-17T08:30:15.123Z``."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def events_path(env: Mapping[str, str] | None = None) -> Path:
    """``$PROCOS_HOME/events.jsonl`` (the per-user default home when PROCOS_HOME is unset)."""
    from engine.config import home_dir

    return home_dir(env) / "events.jsonl"


def event_id_for(*parts: object) -> str:
    """A stable event id from what identifies an event (instance, step, attempt, name, n-th emit of the step).

    A step that runs again after its runner died emits the same ids again, so a receiver that keeps the
    ids it has seen is told each event once (delivery is at least once).
    """
    import hashlib

    return "evt_" + hashlib.sha256("|".join(str(p) for p in parts).encode("utf-8")).hexdigest()[:24]


def make_event(name: str, instance_id: str | None = None, fields: Mapping[str, Any] | None = None, *,
               event_id: str | None = None) -> dict:
    """``{"event", "event_id", "instance_id", "time", **fields}``; raises InvalidInput for an unknown name or a
    reserved field. ``event_id`` defaults to a random one (an event outside a process step)."""
    if name not in EVENTS:
        raise InvalidInput(f"unknown event {name!r}", hint="one of: " + ", ".join(sorted(EVENTS)))
    reserved = RESERVED & set(fields or {})
    if reserved:
        raise InvalidInput(f"event {name!r}: fields {sorted(reserved)} are set by the engine")
    import uuid

    from engine.secrets import redact_value

    return {"event": name, "event_id": event_id or "evt_" + uuid.uuid4().hex[:24], "instance_id": instance_id,
            "time": now_iso(), **redact_value(dict(fields or {}))}


def append_line(path: Path, event: Mapping[str, Any]) -> None:
    """Append ``event`` as one JSON line with a single write (concurrent appenders do not interleave)."""
    from engine.files import private_dir
    from engine.secrets import redact_value

    line = json.dumps(redact_value(dict(event)), sort_keys=True, default=str) + "\n"
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
    try:
        os.write(fd, line.encode("utf-8"))
    finally:
        os.close(fd)


def post_webhook(url: str, event: Mapping[str, Any], attempts: int = WEBHOOK_ATTEMPTS) -> str | None:
    """POST ``event`` as JSON, retrying with backoff; return None when accepted, else the problem."""
    import requests

    from engine.repository.uri import redact
    from engine.secrets import redact_value

    body = redact_value(dict(event))
    problem = None
    for attempt in range(max(1, attempts)):
        try:
            response = requests.post(url, json=body, timeout=WEBHOOK_TIMEOUT)
            if response.status_code < 300:
                return None
            problem = f"HTTP {response.status_code}"
            if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
                break  # the receiver refuses this event; retrying will not help
        except requests.RequestException as exc:
            problem = str(exc)
        if attempt + 1 < attempts:
            time.sleep(BACKOFF[min(attempt, len(BACKOFF) - 1)])
    return f"webhook {redact(url)} did not accept event {event.get('event')!r}: {problem}"


def emit_event(name: str, instance_id: str | None = None, fields: Mapping[str, Any] | None = None, *,
               env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Record one event in events.jsonl and POST it to ``$PROCOS_WEBHOOK_URL`` (when set); never raises.

    Returns ``{"event": <the event>, "problems": [...]}``; each problem was also logged as a warning.
    """
    env = os.environ if env is None else env
    event = make_event(name, instance_id, fields)
    problems: list[str] = []
    path = events_path(env)
    try:
        append_line(path, event)
    except OSError as exc:
        problems.append(f"cannot append event {name!r} to {path}: {exc}")
    from engine.config import load_config

    url = load_config(env).get("webhook_url")
    if url:
        problem = post_webhook(url, event)
        if problem:
            problems.append(problem)
    for problem in problems:
        log.warning("%s", problem)
    return {"event": event, "problems": problems}
