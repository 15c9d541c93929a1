"""How commands print results: JSON for machines, aligned fields for people."""

from __future__ import annotations

import json
from typing import Any

import click


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):  # NumPy scalars
        return value.item()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def emit_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, sort_keys=True, default=_plain))


def emit_fields(result: dict[str, Any]) -> None:
    width = max((len(k) for k in result), default=0)
    for key, value in result.items():
        if isinstance(value, dict):
            value = ", ".join(f"{k}={v}" for k, v in sorted(value.items()))
        click.echo(f"{key:<{width}}  {value}")


def emit(result: dict[str, Any], as_json: bool) -> None:
    emit_json(result) if as_json else emit_fields(result)


JSON_OPT = click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")

COLOURS = {"PASS": "green", "OK": "green", "succeeded": "green", "completed": "green", "FAIL": "red",
           "FAILED": "red", "error": "red", "failed": "red", "drift": "yellow", "DRIFT": "yellow",
           "waiting": "yellow", "interrupted": "yellow", "rejected": "yellow"}


def use_colour() -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (https://no-color.org)."""
    import os
    import sys

    return not os.environ.get("NO_COLOR") and hasattr(sys.stdout, "isatty") and sys.stdout.isatty()


def paint(word: str) -> str:
    """``word`` in its colour (PASS green, FAIL red, ...) when colour is on; else unchanged."""
    colour = COLOURS.get(word)
    return click.style(word, fg=colour, bold=True) if colour and use_colour() else word
