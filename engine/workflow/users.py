"""The user store: users, their roles, their personal tokens (only as hashes), and the audit of refusals.

Users live in the workflow state database (``PROCOS_HOME/state.db``, created owner-readable only, or
``PROCOS_STATE_DSN``), so every machine sharing the state shares the users. A token is 32 random bytes
shown once when issued; the store keeps only its SHA-256 (a token is high-entropy, so a fast hash is
enough, and a lookup never needs the token itself). Panel passwords (``procos user passwd``) are kept
as slow salted argon2id hashes, never in clear.

The ``audit`` table records every refusal and every change of users, including those that happen before
any instance exists (an impersonation attempt at ``process start``, a failed login).
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidInput
from engine.events import now_iso

TOKEN_PREFIX = "pcs_"
NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-@")

USER_TABLES = """
CREATE TABLE IF NOT EXISTS users (name TEXT PRIMARY KEY, roles TEXT NOT NULL, token_hash TEXT,
    password_hash TEXT, created_at TEXT NOT NULL, updated_at TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS users_token ON users (token_hash);
CREATE TABLE IF NOT EXISTS audit (seq {serial}, time TEXT NOT NULL, kind TEXT NOT NULL, by_user TEXT,
    entry TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS login_failures (seq {serial}, key TEXT NOT NULL, time TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS login_failures_key ON login_failures (key, time)
"""


@dataclass(frozen=True)
class User:
    name: str
    roles: tuple[str, ...]
    created_at: str
    has_password: bool = False

    def to_json(self) -> dict[str, Any]:
        return {"user": self.name, "roles": list(self.roles), "created_at": self.created_at,
                "password": self.has_password}


def new_token() -> str:
    """A new personal token: ``pcs_`` and 43 URL-safe characters (256 random bits)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.strip().encode("utf-8")).hexdigest()


def hash_password(password: str) -> str:
    """An argon2id hash (salted, slow) of ``password``."""
    from argon2 import PasswordHasher

    return PasswordHasher().hash(password)


def password_matches(password: str, stored: str | None) -> bool:
    if not stored:
        return False
    from argon2 import PasswordHasher
    from argon2.exceptions import InvalidHashError, VerificationError

    try:
        return PasswordHasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check_name(name: str) -> str:
    if not name or len(name) > 64 or not set(name) <= NAME_CHARS:
        raise InvalidInput(f"user name {name!r} is not valid",
                           hint="use 1-64 letters, digits and . _ - @ (for example the login name)")
    return name


def check_roles(roles: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    clean = []
    for role in roles:
        if not role or not role.replace("_", "").replace("-", "").isalnum():
            raise InvalidInput(f"role {role!r} is not valid", hint="roles are words such as Owner, Approver, Admin")
        if role not in clean:
            clean.append(role)
    return tuple(clean)


class UserRecords:
    """The users/audit half of the SQL store (mixed into :class:`~engine.workflow.store.SqlStore`)."""

    def _user(self, row: Any) -> User:
        return User(name=row[0], roles=tuple(json.loads(row[1])), created_at=row[2], has_password=bool(row[3]))

    def add_user(self, name: str, roles: tuple[str, ...], token_hash: str) -> None:
        with self._tx() as cur:
            self._exec(cur, "INSERT INTO users (name, roles, token_hash, password_hash, created_at, updated_at) "
                       "VALUES (?, ?, ?, NULL, ?, ?)", (name, json.dumps(list(roles)), token_hash, now_iso(),
                                                       now_iso()))

    def get_user(self, name: str) -> User | None:
        with self._tx() as cur:
            row = self._exec(cur, "SELECT name, roles, created_at, password_hash FROM users WHERE name = ?",
                             (name,)).fetchone()
        return self._user(row) if row else None

    def user_by_token(self, token_hash: str) -> User | None:
        with self._tx() as cur:
            row = self._exec(cur, "SELECT name, roles, created_at, password_hash FROM users WHERE token_hash = ?",
                             (token_hash,)).fetchone()
        return self._user(row) if row else None

    def password_hash(self, name: str) -> str | None:
        with self._tx() as cur:
            row = self._exec(cur, "SELECT password_hash FROM users WHERE name = ?", (name,)).fetchone()
        return row[0] if row else None

    def list_users(self) -> list[User]:
        with self._tx() as cur:
            rows = self._exec(cur, "SELECT name, roles, created_at, password_hash FROM users ORDER BY name").fetchall()
        return [self._user(r) for r in rows]

    def count_users(self) -> int:
        with self._tx() as cur:
            return int(self._exec(cur, "SELECT COUNT(*) FROM users").fetchone()[0])

    def update_user(self, name: str, *, token_hash: str | None = None, password_hash: str | None = None,
                    roles: tuple[str, ...] | None = None) -> bool:
        sets, params = ["updated_at = ?"], [now_iso()]
        for column, value in (("token_hash", token_hash), ("password_hash", password_hash)):
            if value is not None:
                sets.append(f"{column} = ?")
                params.append(value)
        if roles is not None:
            sets.append("roles = ?")
            params.append(json.dumps(list(roles)))
        with self._tx() as cur:
            done = self._exec(cur, f"UPDATE users SET {', '.join(sets)} WHERE name = ?", [*params, name])
            return done.rowcount == 1

    def remove_user(self, name: str) -> bool:
        with self._tx() as cur:
            return self._exec(cur, "DELETE FROM users WHERE name = ?", (name,)).rowcount == 1

    def add_login_failure(self, keys: list[str], time: str) -> None:
        """Record one failed login under each of ``keys`` (``user:NAME``, ``client:ADDRESS``)."""
        with self._tx() as cur:
            for key in keys:
                self._exec(cur, "INSERT INTO login_failures (key, time) VALUES (?, ?)", (key, time))

    def login_failures(self, key: str, since: str) -> list[str]:
        """The times (oldest first) of the failed logins recorded under ``key`` at or after ``since``."""
        with self._tx() as cur:
            rows = self._exec(cur, "SELECT time FROM login_failures WHERE key = ? AND time >= ? ORDER BY time",
                              (key, since)).fetchall()
        return [r[0] for r in rows]

    def clear_login_failures(self, key: str, before: str | None = None) -> None:
        """Forget ``key``'s failed logins (all of them, or those older than ``before``)."""
        with self._tx() as cur:
            if before is None:
                self._exec(cur, "DELETE FROM login_failures WHERE key = ?", (key,))
            else:
                self._exec(cur, "DELETE FROM login_failures WHERE key = ? AND time < ?", (key, before))

    def add_audit(self, entry: dict) -> None:
        from engine.secrets import redact_value

        entry = redact_value(entry)
        with self._tx() as cur:
            self._exec(cur, "INSERT INTO audit (time, kind, by_user, entry) VALUES (?, ?, ?, ?)",
                       (entry["time"], entry["kind"], entry.get("by"), json.dumps(entry, sort_keys=True)))

    def audit(self, limit: int | None = None) -> list[dict]:
        with self._tx() as cur:
            rows = self._exec(cur, "SELECT entry FROM audit ORDER BY seq").fetchall()
        entries = [json.loads(r[0]) for r in rows]
        return entries[-limit:] if limit else entries
