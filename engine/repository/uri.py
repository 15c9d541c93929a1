"""Store URIs: one string picks the backend and its settings, everywhere (CLI, BPMN, panel, env).

Forms::

    faiss:PATH[?metric=l2&index=flat]
    postgresql://user[:password]@host[:port]/db[?table=NAME&metric=...&index=...]
    postgresql+embedded:PATH[?table=NAME&metric=...]

Store options (``table``, ``metric``, ``index``, ``dimensions``/``dim``, ``m``, ``ef_construction``,
``ef_search``) are removed from the query string; what remains of a ``postgresql://`` URI is
handed to libpq untouched (``sslmode``, ``host=/socket/dir``, ...).

Passwords (see :mod:`engine.secrets`): ``StoreURI.text`` is always redacted. A redacted password
(``***``) is dropped, so libpq takes the password from ``PGPASSWORD`` or ``~/.pgpass``;
``password_env=NAME`` takes it from the environment variable ``NAME`` of the process that opens the
store (a process waiting for approval gets it from its runner, never from stored data).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from engine.errors import InvalidURI
from engine.records import METRICS
from engine.secrets import MASK, redact_text, unredacted

from .base import INDEX_TYPES

ENV_VAR = "VECTOR_ENDPOINT"
SCHEMES = ("faiss", "postgresql", "postgres", "postgresql+embedded")
STORE_OPTIONS = ("table", "metric", "index", "dimensions", "dim", "m", "ef_construction", "ef_search")
_TABLE_RE = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass(frozen=True)
class StoreURI:
    """A parsed store URI: backend scheme, location, and the store options it carries."""

    scheme: str  # faiss | postgresql | postgresql+embedded
    location: str  # directory for faiss / embedded, libpq DSN (options removed) for postgresql
    options: dict[str, str] = field(default_factory=dict)
    text: str = ""

    @property
    def table(self) -> str:
        return self.options.get("table", "embeddings")


def parse_uri(uri: str | None) -> StoreURI:
    """Parse a store URI (or ``$VECTOR_ENDPOINT`` when ``uri`` is None)."""
    if uri is None:
        from engine.config import load_config

        uri = load_config().get("endpoint")  # VECTOR_ENDPOINT, else endpoint: in config.yaml
        if not uri:
            raise InvalidURI("no store URI given and VECTOR_ENDPOINT is not set",
                             hint="pass a URI such as faiss:./store or postgresql+embedded:./pgdata")
    uri = unredacted(uri.strip())  # a run lent the password of this redacted URI uses it
    scheme, sep, rest = uri.partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise InvalidURI(f"unknown store URI {redact(uri)!r}",
                         hint="use faiss:PATH, postgresql://user@host:port/db or postgresql+embedded:PATH")
    if scheme in ("postgresql", "postgres"):
        parts = urlsplit(uri)
        pairs = parse_qsl(parts.query, keep_blank_values=True)
        options = {k: v for k, v in pairs if k in STORE_OPTIONS}
        libpq = [(k, v) for k, v in pairs
                 if k not in STORE_OPTIONS and k != "password_env" and not (k == "password" and v == MASK)]
        netloc = parts.netloc
        if parts.password == MASK:  # a redacted URI: the password comes from the runner's environment
            netloc = f"{parts.username or ''}@{netloc.rsplit('@', 1)[1]}"
        env_name = dict(pairs).get("password_env")
        if env_name:
            secret = os.environ.get(env_name)
            if not secret:
                raise InvalidURI(f"store URI {redact(uri)!r} takes its password from ${env_name}, which is not set",
                                 hint=f"export {env_name}=... in the environment of the process that opens it")
            libpq = [(k, v) for k, v in libpq if k != "password"] + [("password", secret)]
        location = urlunsplit((parts.scheme, netloc, parts.path, urlencode(libpq), ""))
        scheme = "postgresql"
    else:
        path, _, query = rest.partition("?")
        if path.startswith("//"):
            path = path[2:]
        if not path:
            raise InvalidURI(f"store URI {uri!r} has no path", hint=f"write it as {scheme}:PATH")
        options = dict(parse_qsl(query, keep_blank_values=True))
        unknown = sorted(set(options) - set(STORE_OPTIONS))
        if unknown:
            raise InvalidURI(f"unknown option(s) {', '.join(unknown)} in store URI {uri!r}",
                             hint=f"known options: {', '.join(STORE_OPTIONS)}")
        location = os.path.abspath(os.path.expanduser(path))
    _check_options(options, uri)
    return StoreURI(scheme=scheme, location=location, options=options, text=redact(uri))


def _check_options(options: dict[str, str], uri: str) -> None:
    if "dim" in options:
        options.setdefault("dimensions", options.pop("dim"))
    if "metric" in options and options["metric"] not in METRICS:
        raise InvalidURI(f"unknown metric {options['metric']!r} in {redact(uri)!r}",
                         hint=f"use one of {', '.join(METRICS)}")
    if "index" in options and options["index"] not in INDEX_TYPES:
        raise InvalidURI(f"unknown index {options['index']!r} in {redact(uri)!r}",
                         hint=f"use one of {', '.join(INDEX_TYPES)}")
    if "table" in options and not _TABLE_RE.match(options["table"]):
        raise InvalidURI(f"invalid table name {options['table']!r}",
                         hint="use lowercase letters, digits and underscores, starting with a letter")
    for key in ("dimensions", "m", "ef_construction", "ef_search"):
        if key in options and (not options[key].isdigit() or int(options[key]) <= 0):
            raise InvalidURI(f"option {key}={options[key]!r} in {redact(uri)!r} must be a positive integer")


def redact(uri: str) -> str:
    """The URI with any password replaced by ``***`` (safe for manifests, logs, events, UI)."""
    return redact_text(uri)
