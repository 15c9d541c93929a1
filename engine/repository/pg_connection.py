"""Connections of the pgvector backend and the typed errors of their failures.

:func:`connect` opens a psycopg connection (a failure is a StoreError naming the store, on one line,
with a hint); :func:`db_error` turns any psycopg error of a store operation into a typed error (a
lost connection, a full server disk, missing privileges); :func:`translate_errors` wraps a store
class's public methods (generators too) so that no psycopg exception reaches a caller.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
from psycopg import Connection

from engine.errors import StoreError


def connect(dsn: str, where: str, *, autocommit: bool = False) -> Connection:
    """A psycopg connection to ``dsn``; connection failures become StoreError naming ``where``."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, client_encoding="utf8", application_name="procos")
    except psycopg.OperationalError as exc:
        from engine.secrets import redact_text

        detail = redact_text(" ".join(str(exc).split()))  # libpq's message, on one line
        hint = "check that the server is running and the URI's user, host, port and database"
        if "password" in detail.lower():
            hint = ("stored URIs carry no password: give it to the process that opens the store with "
                    "PGPASSWORD, ~/.pgpass, or ?password_env=NAME in the URI")
        raise StoreError(f"cannot connect to {where}: {detail}", hint=hint) from exc


def db_error(exc: psycopg.Error, conn: Connection | None, uri: str) -> StoreError:
    """The typed error of a psycopg failure: a lost connection, a full server disk, or anything else."""
    state = exc.sqlstate or ""
    if isinstance(exc, psycopg.InterfaceError) or isinstance(exc, psycopg.OperationalError) and (
            conn is None or conn.closed or conn.broken or not state or state.startswith(("08", "57P"))):
        return lost(exc, uri)  # this or a stream's own connection is gone (no SQLSTATE: client side)
    detail = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, psycopg.errors.DiskFull):
        from engine.errors import DiskFull

        return DiskFull(f"the PostgreSQL server of {uri} ran out of disk space: {detail}",
                        hint="free space on the database server, then run it again; the operation was "
                             "rolled back")
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StoreError(f"PostgreSQL refused {uri}'s role: {detail}",
                          hint="grant the role the privileges on the store's tables, or use another role")
    return StoreError(f"PostgreSQL failed an operation on {uri}: {detail}",
                      hint="check the server's log; the operation was rolled back, run it again")


def lost(exc: Exception, uri: str) -> StoreError:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return StoreError(f"the PostgreSQL connection of {uri} failed: {first}",
                      hint="check that the server is running and reachable; the operation was rolled back, "
                           "run it again (the store reconnects)")


def _translated(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a psycopg error inside ``method`` into a typed StoreError on one line with a hint (generators too)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(self: Any, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except psycopg.Error as exc:
                raise db_error(exc, self._conn, self.uri) from exc
        return stream

    @functools.wraps(method)
    def call(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except psycopg.Error as exc:
            raise db_error(exc, self._conn, self.uri) from exc
    return call


def translate_errors(cls: type, names: tuple[str, ...]) -> None:
    """Wrap the methods ``names`` of the store class ``cls`` with :func:`_translated`."""
    for name in names:
        setattr(cls, name, _translated(getattr(cls, name)))
