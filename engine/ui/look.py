"""How the panel shows values: ages, sizes, durations, states and green/amber/red status badges."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

MARKS = {"green": "✔", "amber": "▲", "red": "✖"}  # glyphs every common font has (no emoji font needed)
BACKGROUNDS = {"✔": "#dafbe1", "▲": "#fff8c5", "✖": "#ffebe9"}
STATE_COLOURS = {"completed": "green", "waiting": "amber", "running": "amber", "error": "red",
                 "interrupted": "red", "cancelled": "amber"}


def parse_time(stamp: str | None) -> datetime | None:
    if not stamp:
        return None
    try:
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00"))
    except ValueError:
        return None


def seconds_text(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds < 10 else f"{seconds:.0f} s"
    minutes, sec = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {sec} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes} min"
    return f"{hours // 24} days"


def age(stamp: str | None, now: datetime | None = None) -> str:
    then = parse_time(stamp)
    if then is None:
        return "-"
    return seconds_text(((now or datetime.now(UTC)) - then).total_seconds())


def between(start: str | None, end: str | None) -> float | None:
    a, b = parse_time(start), parse_time(end)
    return (b - a).total_seconds() if a and b else None


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def badge(colour: str | None, text: str) -> str:
    """``✔ text`` (green), ``▲ text`` (amber) or ``✖ text`` (red): a mark and words, never colour alone;
    :func:`table` paints such cells green, amber or red."""
    return f"{MARKS.get(colour or 'amber', MARKS['amber'])} {text}"


def _paint(value: Any) -> str:
    if isinstance(value, str) and value[:1] in BACKGROUNDS:
        return f"background-color: {BACKGROUNDS[value[:1]]}"
    return ""


def table(rows: list[dict]) -> Any:
    """``rows`` as a styled table for ``st.dataframe``: badge cells get their colour."""
    import pandas as pd

    return pd.DataFrame(rows).style.map(_paint)


def state_badge(state: str) -> str:
    return badge(STATE_COLOURS.get(state, "amber"), state)


def short_hash(value: Any, n: int = 12) -> str:
    return f"{str(value)[:n]}…" if value else "-"
