"""``PROCOS_HOME/schedules.yaml``: what the scheduler starts, and when.

::

    schedules:
      - name: hourly-delta            # unique
        process: replicate            # a deployed process
        variables: {source: "postgresql://kb@db/knowledge", to: /srv/replica}
        every: 1h                     # or cron: "5 * * * *" (five fields, UTC)
        missed: once                  # skip | once (default): runs missed while no scheduler ran

``every`` occurrences are aligned to the Unix epoch (``15m``: :00, :15, :30, :45 UTC) and ``cron`` ones
are computed in UTC, so every scheduler computes the same due times. A schedule first seen by a scheduler
runs at its next occurrence. With ``missed: once`` one run makes up for any number of missed occurrences;
with ``skip`` an occurrence more than :data:`GRACE_SECONDS` late is recorded as skipped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

from .timeouts import parse_duration

GRACE_SECONDS = 60.0
MISSED = ("skip", "once")
KEYS = {"name", "process", "variables", "cron", "every", "missed", "queue"}


@dataclass(frozen=True)
class Schedule:
    name: str
    process: str
    variables: dict[str, Any] = field(default_factory=dict)
    cron: str | None = None
    every: str | None = None
    missed: str = "once"
    queue: str | None = None

    @property
    def every_seconds(self) -> float | None:
        return parse_duration(self.every, f"schedule {self.name} every") if self.every else None

    def previous(self, now: datetime) -> datetime:
        """The latest occurrence at or before ``now``."""
        if self.every:
            step = self.every_seconds or 1.0
            return datetime.fromtimestamp((now.timestamp() // step) * step, UTC)
        from croniter import croniter

        it = croniter(self.cron, now + timedelta(microseconds=1))
        return it.get_prev(datetime).astimezone(UTC)

    def next(self, now: datetime) -> datetime:
        """The first occurrence after ``now``."""
        if self.every:
            step = self.every_seconds or 1.0
            return datetime.fromtimestamp((now.timestamp() // step + 1) * step, UTC)
        from croniter import croniter

        return croniter(self.cron, now).get_next(datetime).astimezone(UTC)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "process": self.process, **({"cron": self.cron} if self.cron else
                                                                {"every": self.every}), "missed": self.missed}


def iso(when: datetime) -> str:
    """``2024-05-17T08:30:00.000Z``: the form occurrences are stored in (sorts as time)."""
    return when.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def schedules_path(home: Path) -> Path:
    return home / "schedules.yaml"


def read_schedules(path: Path) -> list[Schedule]:
    """The entries of ``path`` ([] when there is no file); ConfigError naming every problem otherwise."""
    import yaml

    if not path.is_file():
        return []
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"schedules file {path} cannot be read: {exc}") from exc
    entries = doc.get("schedules") if isinstance(doc, dict) else doc
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ConfigError(f"schedules file {path} must list entries under 'schedules:'",
                          hint="schedules:\n  - {name: nightly, process: export_snapshot, cron: '0 2 * * *'}")
    found, problems = [], []
    for i, raw in enumerate(entries, start=1):
        try:
            found.append(_entry(raw, i))
        except ConfigError as exc:
            problems.append(exc.message)
    names = [s.name for s in found]
    problems += [f"schedule name {n!r} is used more than once" for n in sorted({n for n in names if names.count(n) > 1})]
    if problems:
        raise ConfigError(f"schedules file {path}: " + "; ".join(problems),
                          hint="each entry: name, process, variables, cron (five fields) or every (30s, 15m, 1h), "
                               "missed: skip|once")
    return found


def _entry(raw: Any, i: int) -> Schedule:
    where = f"entry {i}"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} is not a mapping")
    unknown = sorted(set(map(str, raw)) - KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {', '.join(unknown)}")
    name, process = raw.get("name"), raw.get("process")
    if not isinstance(name, str) or not name or not isinstance(process, str) or not process:
        raise ConfigError(f"{where}: needs a name and a process")
    if ("cron" in raw) == ("every" in raw):
        raise ConfigError(f"schedule {name}: give either cron or every")
    variables = raw.get("variables") or {}
    if not isinstance(variables, dict):
        raise ConfigError(f"schedule {name}: variables must be a mapping")
    missed = raw.get("missed", "once")
    if missed not in MISSED:
        raise ConfigError(f"schedule {name}: missed must be skip or once, got {missed!r}")
    entry = Schedule(name=name, process=process, variables=dict(variables), cron=_cron(raw.get("cron"), name),
                     every=str(raw["every"]) if "every" in raw else None, missed=missed, queue=raw.get("queue"))
    if entry.every:
        try:
            entry.every_seconds  # noqa: B018 - validates the duration
        except Exception as exc:  # noqa: BLE001 - reported with the entry's name
            raise ConfigError(f"schedule {name}: {exc}") from None
    return entry


def _cron(text: Any, name: str) -> str | None:
    if text is None:
        return None
    if not isinstance(text, str) or len(text.split()) != 5:
        raise ConfigError(f"schedule {name}: cron {text!r} must have five fields (minute hour day month weekday)")
    from croniter import croniter

    if not croniter.is_valid(text):
        raise ConfigError(f"schedule {name}: cron {text!r} is not a valid expression")
    return text
