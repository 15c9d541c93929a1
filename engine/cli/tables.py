"""Readable output: aligned tables with a header row, ages, sizes, lines clipped to the terminal."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

MAX_LINE = 120

Column = tuple[str, Callable[[dict[str, Any]], Any]]


def clip(text: Any, width: int = MAX_LINE) -> str:
    text = "" if text is None else str(text)
    text = " ".join(text.split()) if "\n" in text else text
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: Sequence[dict[str, Any]], columns: Sequence[Column], *, empty: str = "(none)",
          widest: int = 48) -> str:
    """``rows`` as an aligned table; each cell is clipped to ``widest`` and each line to 120 characters."""
    if not rows:
        return empty
    cells = [[clip(fn(r), widest) for _, fn in columns] for r in rows]
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (h, _), w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join(clip(line) for line in lines)


def parse_time(iso: str | None) -> datetime | None:
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return None


def age(iso: str | None, now: datetime | None = None) -> str:
    """``42s``, ``5m``, ``3h``, ``2d`` since ``iso`` (``-`` when unknown)."""
    when = parse_time(iso)
    if when is None:
        return "-"
    return duration(((now or datetime.now(UTC)) - when).total_seconds())


def duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            whole, rest = divmod(int(seconds), size)
            small = {"d": ("h", 3600), "h": ("m", 60), "m": ("s", 1)}[unit]
            return f"{whole}{unit}" + (f"{rest // small[1]}{small[0]}" if rest // small[1] else "")
    return f"{seconds:.0f}s"


def size(n: int | None) -> str:
    if n is None:
        return "-"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if value < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
