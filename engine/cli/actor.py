"""Who acts, for every command that acts: ``--as NAME`` (an assertion) and ``--token-file F``.

The token comes from ``--token-file F`` (on the command or on ``procos`` itself), else ``PROCOS_TOKEN``,
else the login name identifies the user. ``--as`` never grants anything: it is checked against that
identity and refused (exit 77, audited) when it differs.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import click


def actor_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add ``--as`` and ``--token-file``; the command receives ``actor=dict(token=..., as_user=...)``."""

    @click.option("--as", "as_user", metavar="USER",
                  help="Assert who you are; refused (exit 77) unless it is the user your token (or login) names.")
    @click.option("--token-file", type=click.Path(dir_okay=False), metavar="FILE",
                  help="Read your personal token from FILE (mode 600) instead of $PROCOS_TOKEN.")
    @functools.wraps(fn)
    def wrapper(*args: Any, as_user: str | None, token_file: str | None, **kwargs: Any) -> Any:
        return fn(*args, actor=credentials(as_user, token_file), **kwargs)

    return wrapper


def credentials(as_user: str | None, token_file: str | None) -> dict[str, Any]:
    """``{"token", "as_user"}`` for the api's process functions."""
    from engine.api.processes import token_from_file

    root = click.get_current_context().find_root()
    path = token_file or (root.obj or {}).get("token_file")
    return {"token": token_from_file(path) if path else None, "as_user": as_user}
