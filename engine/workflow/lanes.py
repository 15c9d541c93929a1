"""Lanes, roles and approvals: who may start a process and who may complete which user task.

A lane's name is the role that may act in it (lane ``Approver`` -> role ``Approver``); a task outside any
lane may be completed by any user of the store. A process whose start event lies in a lane may be started
only by a user holding that lane's role (the shipped export and import start in ``Owner``).
Separation of duties: in ``prod`` the user who started an instance may not complete its tasks (every
user task records a decision, so this is "the starter cannot approve"). The runner checks
:func:`refusal` inside the same revision-checked save that records the completion, and audits every
refusal.

Roles come from the user store (:mod:`.identity`); ``PROCOS_HOME/roles.yaml`` may add roles to users of
the store, shaped like::

    users:
      alice: [Owner, Approver]
      bob: [Approver]
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import WorkflowError

if TYPE_CHECKING:
    from .identity import Identity

EXPECTED_SHAPE = "users:\n  alice: [Owner, Approver]\n  bob: [Approver]"


def read_roles_file(path: Path) -> dict[str, frozenset[str]]:
    """The roles ``roles.yaml`` adds per user name ({} when there is no file); malformed is an error."""
    import yaml

    if not path.is_file():
        return {}
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise WorkflowError(f"roles file {path} is not valid YAML: {exc}", hint=EXPECTED_SHAPE) from exc
    users = doc.get("users") if isinstance(doc, dict) else None
    if not isinstance(users, dict) or not all(
        isinstance(u, str) and isinstance(r, list) and all(isinstance(x, str) for x in r) for u, r in users.items()
    ):
        raise WorkflowError(f"roles file {path} must map users to lists of roles",
                            hint=f"shape it like:\n{EXPECTED_SHAPE}")
    return {u: frozenset(r) for u, r in users.items()}


def refusal(actor: Identity, lane: str | None, *, started_by: str, environment: str) -> str | None:
    """Why ``actor`` may not complete a task in ``lane`` of this instance, or None when they may."""
    if not actor.known:
        return f"{actor.name!r} is not a user of the store (authenticate with PROCOS_TOKEN)"
    if lane is not None and lane not in actor.roles:
        held = ", ".join(sorted(actor.roles)) or "none"
        return f"user {actor.name!r} lacks role {lane!r} required by lane {lane!r} (has: {held})"
    if environment != "dev" and actor.name == started_by:
        return f"separation of duties: {actor.name!r} started this instance and cannot approve it in {environment}"
    return None


def start_refusal(actor: Identity, lane: str | None) -> str | None:
    """Why ``actor`` may not start a process whose start event is in ``lane``, or None."""
    if not actor.known:
        return f"{actor.name!r} is not a user of the store (authenticate with PROCOS_TOKEN)"
    if lane is not None and lane not in actor.roles:
        held = ", ".join(sorted(actor.roles)) or "none"
        return f"starting needs the {lane!r} role of the start event's lane (user {actor.name!r} has: {held})"
    return None
