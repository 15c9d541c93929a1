"""Keep secrets out of everything that is persisted or shown.

A password can reach procos in a store URI, as userinfo (``postgresql://kb:PW@db/knowledge``) or as a
query parameter (``...?password=PW``). Whatever is written (manifests, instance data and history,
events, webhook bodies, reports, logs) or printed (errors, results) goes through :func:`redact_text`
or :func:`redact_value` first, which replace the password with ``***``.

A URI whose password is ``***`` is a redacted URI: opening it uses no password from the URI, so libpq
takes one from the runner's own environment (``PGPASSWORD``, ``~/.pgpass``), or from the variable that
``?password_env=NAME`` names. That is how a process that waits for approval gets its password back
at run time without it ever being stored.
"""

from __future__ import annotations

import re
from typing import Any

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
