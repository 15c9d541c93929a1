"""Configuration of the front door: the effective settings, where each came from (``procos config show``)."""

from __future__ import annotations

from typing import Any


def show_config() -> dict[str, Any]:
    """Every setting with its value (URIs redacted) and source: ``{"KEY": {"value", "source", "env"}}``."""
    from engine.config import load_config

    return load_config().show()


def deployment_environment() -> str:
    """``dev`` or ``prod`` (``PROCOS_ENV``, else config.yaml; unset means prod)."""
    from engine.config import environment

    return environment()


def signing_key() -> str | None:
    """The OpenPGP key the export process and DR drills sign with (``PROCOS_SIGNING_KEY``), or None."""
    from engine.config import load_config

    return load_config().get("signing_key")


def redact(text: str) -> str:
    """``text`` with every password removed (what the CLI and the panel print)."""
    from engine.secrets import redact_text

    return redact_text(text)
