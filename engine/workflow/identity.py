"""Who acts: an identity is established from a personal token or the login name, never from a claim.

- With a token (``PROCOS_TOKEN``, or ``--token-file F``), the user whose token it is acts. An unknown or
  revoked token is refused.
- Without one, the operating-system login name acts; it holds roles only if it is a user of the store.
- ``--as NAME`` is an assertion checked against that identity: a different name is refused (exit 77)
  and audited. There is no way to act as another user without that user's token.

Roles are those the user store gives a user, plus those ``PROCOS_HOME/roles.yaml`` lists for a name that
is a user of the store (the file grants no identity by itself). Managing users needs the ``Admin``
role; on a store with no user yet, the first user may be created by whoever runs procos with access to
``PROCOS_HOME`` (the installer), and must be an ``Admin``.
"""

from __future__ import annotations

import getpass
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from engine.errors import InvalidInput, LoginThrottled, NotAuthorized

from . import history
from .lanes import read_roles_file
from .users import User, check_name, check_roles, hash_password, hash_token, new_token, password_matches

ADMIN = "Admin"


@dataclass(frozen=True)
class Identity:
    """The user acting: name, roles, how they were identified, and whether the store knows them."""

    name: str
    roles: frozenset[str]
    via: str  # token | login | password | process (a trusted in-process caller, e.g. the demo)
    known: bool

    def has(self, role: str) -> bool:
        return role in self.roles


def login_name() -> str:
    return getpass.getuser()


def read_token_file(path: str | Path) -> str:
    """The token in ``path`` (first line); refused when others may read the file."""
    p = Path(path)
    try:
        mode = p.stat().st_mode
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInput(f"cannot read token file {p}: {exc.strerror or exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise NotAuthorized(f"token file {p} can be read by other users; refused",
                            hint=f"chmod 600 {p}, or better issue a new token (procos user token NAME)")
    token = text.strip().splitlines()[0].strip() if text.strip() else ""
    if not token:
        raise InvalidInput(f"token file {p} is empty")
    return token


class Directory:
    """Users and roles over one state store (see :mod:`.users`) plus the optional roles.yaml."""

    def __init__(self, store, roles_path: Path) -> None:
        self.store = store
        self.roles_path = roles_path

    # --- identities ---------------------------------------------------------------------------

    def roles_of(self, user: User | None) -> frozenset[str]:
        if user is None:
            return frozenset()
        return frozenset(user.roles) | read_roles_file(self.roles_path).get(user.name, frozenset())

    def identity(self, name: str, via: str = "process") -> Identity:
        """The identity of user ``name`` for a trusted in-process caller (the CLI authenticates first)."""
        user = self.store.get_user(name)
        return Identity(name=name, roles=self.roles_of(user), via=via, known=user is not None)

    def authenticate(self, *, token: str | None = None, as_user: str | None = None,
                     action: str = "act") -> Identity:
        """The acting identity from ``token`` (else the login name); refuse a ``--as`` that differs."""
        token = token if token is not None else os.environ.get("PROCOS_TOKEN") or None
        if token:
            user = self.store.user_by_token(hash_token(token))
            if user is None:
                self.refuse(as_user or "(unknown)", action, "the token is not valid (unknown or revoked)")
                raise NotAuthorized("the token given (PROCOS_TOKEN or --token-file) is not valid: unknown or revoked",
                                    hint="ask an administrator for a new one: procos user token NAME")
            who = Identity(name=user.name, roles=self.roles_of(user), via="token", known=True)
        else:
            who = self.identity(login_name(), via="login")
        if as_user is not None and as_user != who.name:
            why = (f"--as {as_user} was given, but the caller is authenticated as {who.name!r} "
                   f"(by {'token' if who.via == 'token' else 'login name'})")
            self.refuse(who.name, action, why, asserted=as_user)
            raise NotAuthorized(why, hint=f"acting as {as_user} needs {as_user}'s own token in PROCOS_TOKEN "
                                          "(or --token-file); drop --as to act as yourself")
        return who

    def login(self, name: str, password: str, client: str | None = None) -> Identity | None:
        """The identity for a correct name and password (the panel's login), else None (audited).

        Raises LoginThrottled (audited, password not checked) after too many recent failures for the
        name or the ``client`` address (see :mod:`.throttle`)."""
        from . import throttle

        try:
            throttle.check(self.store, name, client)
        except LoginThrottled as exc:
            self.refuse(name, "login", exc.message, client=client)
            raise
        user = self.store.get_user(name)
        if user is None or not password_matches(password, self.store.password_hash(name)):
            throttle.failed(self.store, name, client)
            self.refuse(name, "login", "wrong user name or password", client=client)
            return None
        throttle.succeeded(self.store, name)
        self.store.add_audit(history.entry("login", by=name, client=client))
        return Identity(name=name, roles=self.roles_of(user), via="password", known=True)

    def refuse(self, who: str, action: str, why: str, **fields) -> None:
        self.store.add_audit(history.entry("refused", by=who, action=action, why=why, **fields))

    def require(self, actor: Identity, role: str, action: str) -> None:
        if not actor.has(role):
            why = f"{actor.name!r} may not {action}: it needs the {role} role"
            self.refuse(actor.name, action, why)
            raise NotAuthorized(why, hint=f"ask a user with the {role} role")

    # --- managing users -----------------------------------------------------------------------

    def _admin_or_bootstrap(self, actor: Identity, action: str, roles: tuple[str, ...] = ()) -> None:
        if self.store.count_users() == 0:
            if ADMIN not in roles:
                raise InvalidInput("the user store is empty: the first user must be an administrator",
                                   hint=f"procos user add NAME --role {ADMIN} [--role Owner ...]")
            return
        self.require(actor, ADMIN, action)

    def add(self, actor: Identity, name: str, roles: list[str]) -> dict:
        """Create user ``name`` with ``roles``; return ``{"user", "roles", "token"}`` (the token only here)."""
        name, clean = check_name(name), check_roles(roles)
        self._admin_or_bootstrap(actor, f"add user {name}", clean)
        if self.store.get_user(name) is not None:
            raise InvalidInput(f"user {name!r} exists already",
                               hint=f"procos user token {name} issues a new token; procos user remove {name}")
        token = new_token()
        self.store.add_user(name, clean, hash_token(token))
        self.store.add_audit(history.entry("user_added", by=actor.name, user=name, roles=list(clean)))
        return {"user": name, "roles": list(clean), "token": token}

    def remove(self, actor: Identity, name: str) -> dict:
        self.require(actor, ADMIN, f"remove user {name}")
        if not self.store.remove_user(name):
            raise InvalidInput(f"no user {name!r}", hint="procos user list shows the users")
        self.store.add_audit(history.entry("user_removed", by=actor.name, user=name))
        return {"user": name, "removed": True}

    def new_token(self, actor: Identity, name: str) -> dict:
        """Issue a new token for ``name`` (revoking the old one): the user themself, or an Admin."""
        if actor.name != name or not actor.known:
            self.require(actor, ADMIN, f"issue a token for {name}")
        user = self.store.get_user(name)
        if user is None:
            raise InvalidInput(f"no user {name!r}", hint="procos user add NAME --role ROLE")
        token = new_token()
        self.store.update_user(name, token_hash=hash_token(token))
        self.store.add_audit(history.entry("token_issued", by=actor.name, user=name))
        return {"user": name, "roles": list(user.roles), "token": token}

    def set_password(self, actor: Identity, name: str, password: str) -> dict:
        """Set ``name``'s panel password (the user themself, or an Admin)."""
        if actor.name != name or not actor.known:
            self.require(actor, ADMIN, f"set the password of {name}")
        if len(password) < 8:
            raise InvalidInput("a password needs at least 8 characters")
        if not self.store.update_user(name, password_hash=hash_password(password)):
            raise InvalidInput(f"no user {name!r}", hint="procos user add NAME --role ROLE")
        self.store.add_audit(history.entry("password_set", by=actor.name, user=name))
        return {"user": name, "password": True}

    def list(self, actor: Identity) -> list[dict]:
        if not actor.known:
            self.refuse(actor.name, "list users", "not a user of the store")
            raise NotAuthorized(f"{actor.name!r} is not a user of the store",
                                hint="authenticate with PROCOS_TOKEN, or ask an administrator to add you")
        return [{**u.to_json(), "roles": sorted(self.roles_of(u))} for u in self.store.list_users()]
