"""Lanes, roles and approvals: who may complete which user task.

``PROCOS_HOME/roles.yaml`` maps users to roles::

    users:
      alice: [Owner, Approver]
      bob: [Approver]

A lane's name is the role that may act in it (lane ``Approver`` -> role ``Approver``); a task outside
any lane may be completed by any user listed in the file. Separation of duties: when the instance's
``environment`` is ``prod``, the user who started it may not complete its tasks (every user task
records a decision, so this is "the starter cannot approve"). The runner calls :func:`refusal` inside
the same revision-checked save that records the completion, and audits every refusal.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import WorkflowError

EXPECTED_SHAPE = "users:\n  alice: [Owner, Approver]\n  bob: [Approver]"


@dataclass(frozen=True)
class Roles:
    users: dict[str, frozenset[str]]

    def roles_of(self, user: str) -> frozenset[str]:
        return self.users.get(user, frozenset())

    def can_act(self, user: str, lane: str | None) -> bool:
        """True when ``user`` holds the role named by ``lane`` (any listed user when there is no lane)."""
        if lane is None:
            return user in self.users
        return lane in self.roles_of(user)


def load_roles(path: Path) -> Roles:
    """Read and check the roles file; a missing or malformed file is an error showing the shape."""
    import yaml

    if not path.is_file():
        raise WorkflowError(f"roles file {path} not found; user tasks need it to know who may act",
                            hint=f"create {path} shaped like:\n{EXPECTED_SHAPE}")
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
    return Roles({u: frozenset(r) for u, r in users.items()})


def refusal(roles: Roles, user: str, lane: str | None, *, started_by: str, environment: str) -> str | None:
    """Why ``user`` may not complete a task in ``lane`` of this instance, or None when they may."""
    if user not in roles.users:
        return f"user {user!r} is not in the roles file"
    if not roles.can_act(user, lane):
        held = ", ".join(sorted(roles.roles_of(user))) or "none"
        return f"user {user!r} lacks role {lane!r} required by lane {lane!r} (has: {held})"
    if environment == "prod" and user == started_by:
        return f"separation of duties: {user!r} started this instance and cannot approve it in prod"
    return None
