"""Keep secrets out of everything that is persisted or shown.

A password can reach procos in a store URI, as userinfo (``postgresql://kb:PW@db/knowledge``) or as a
query parameter (``...?password=PW``). Whatever is written (manifests, instance data and history,
events, webhook bodies, reports, logs) or printed (errors, results) goes through :func:`redact_text`
or :func:`redact_value` first, which replace the password with ``***``.

A URI whose password is ``***`` is a redacted URI: opening it uses no password from the URI, so libpq
takes one from the runner's own environment (``PGPASSWORD``, ``~/.pgpass``), or from the variable that
``?password_env=NAME`` names. That is how a process that waits for approval gets its password back
at run time without it ever being stored.

The process that starts an instance knows the password it was given: :func:`runtime_secrets` lends it
to that one run (a context variable, so other instances run by the same long-lived process, a worker or
the panel, never see it), and it is gone when the call returns.
"""

from __future__ import annotations

import contextlib
import contextvars
import re
from collections.abc import Iterator
from typing import Any

_RUNTIME: contextvars.ContextVar[dict[str, str] | None] = contextvars.ContextVar("procos_runtime_secrets",
                                                                                 default=None)

MASK = "***"
_URI = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.\-]*://)(?P<netloc>[^\s/?#'\"<>]*)")
_PARAM = re.compile(r"(?P<key>(?:^|(?<=[?&;\s]))(?:ssl)?password\s*=\s*)(?P<value>'[^']*'|[^&;\s#'\"]*)",
                    re.IGNORECASE)


def _netloc(match: re.Match[str]) -> str:
    netloc = match.group("netloc")
    if "@" not in netloc:
        return match.group(0)
    userinfo, host = netloc.rsplit("@", 1)
    if ":" not in userinfo:
        return match.group(0)
    user = userinfo.split(":", 1)[0]
    return f"{match.group('scheme')}{user}:{MASK}@{host}"


def redact_text(text: str) -> str:
    """``text`` with every URI password and every ``password=`` value replaced by ``***``."""
    if not text or ("@" not in text and "assword" not in text.lower()):
        return text
    text = _URI.sub(_netloc, text)
    return _PARAM.sub(lambda m: m.group("key") + MASK, text)


def redact_value(value: Any) -> Any:
    """A copy of a JSON-like value with :func:`redact_text` applied to every string (keys included)."""
    if isinstance(value, str):
        return redact_text(value)
    if isinstance(value, dict):
        return {redact_text(k) if isinstance(k, str) else k: redact_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact_value(v) for v in value]
    return value


def has_secret(value: Any) -> bool:
    """Whether :func:`redact_value` would change ``value``."""
    return redact_value(value) != (list(value) if isinstance(value, tuple) else value)


def secret_paths(value: Any, path: str = "") -> list[str]:
    """The keys (``source``, ``stores[0]``) of the strings in ``value`` that carry a password."""
    if isinstance(value, str):
        return [path or "value"] if redact_text(value) != value else []
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in secret_paths(v, f"{path}.{k}" if path else str(k))]
    if isinstance(value, list | tuple):
        return [p for i, v in enumerate(value) for p in secret_paths(v, f"{path}[{i}]")]
    return []


def secret_strings(value: Any) -> dict[str, str]:
    """``{redacted: original}`` for every string in ``value`` that carries a password."""
    if isinstance(value, str):
        red = redact_text(value)
        return {red: value} if red != value else {}
    items = value.values() if isinstance(value, dict) else value if isinstance(value, list | tuple) else []
    found: dict[str, str] = {}
    for item in items:
        found.update(secret_strings(item))
    return found


@contextlib.contextmanager
def runtime_secrets(secrets: dict[str, str]) -> Iterator[None]:
    """Lend ``{redacted URI: URI with its password}`` to the code run inside (this context only)."""
    token = _RUNTIME.set({**(_RUNTIME.get() or {}), **secrets})
    try:
        yield
    finally:
        _RUNTIME.reset(token)


def unredacted(text: str) -> str:
    """The URI with its password when the current run was lent it (see :func:`runtime_secrets`), else ``text``."""
    return (_RUNTIME.get() or {}).get(text, text)
