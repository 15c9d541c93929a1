"""The effective configuration: an environment variable wins over the config file, which wins over the default.

Where things live:

- ``PROCOS_HOME``: the state folder (state DB, events, users, reports, script cache). Default: a
  per-user folder, ``$XDG_DATA_HOME/procos`` or else ``~/.local/share/procos``, never the current folder,
  so every command a person runs, from any folder, sees the same instances and tasks.
- ``PROCOS_CONFIG``: the config file; default ``$PROCOS_HOME/config.yaml``. A YAML mapping of the keys
  in :data:`OPTIONS` (``environment: prod``, ``processes: [/srv/procos/processes]``, ...).

Every option, with the environment variable that overrides it, is in :data:`OPTIONS`;
:func:`load_config` reads them once and remembers where each value came from (``procos config show``).
Nothing here creates files. ``environment`` fails closed: unset means ``prod``, and a value other than
``dev`` or ``prod`` is an error, never a silent downgrade.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

ENVIRONMENTS = ("dev", "prod")


@dataclass(frozen=True)
class Option:
    """One setting: its key in config.yaml, the environment variable that overrides it, its default."""

    key: str
    env: str
    default: Any
    kind: str  # str | list (comma-separated in the environment) | paths (os.pathsep-separated)
    help: str
    redact: bool = False  # a URI that may carry a password: shown redacted


OPTIONS: tuple[Option, ...] = (
    Option("environment", "PROCOS_ENV", "prod", "str",
           "dev or prod; prod (the default) makes exports and imports wait for an approver and imports "
           "require a trusted signature"),
    Option("state_dsn", "PROCOS_STATE_DSN", None, "str",
           "a postgresql:// DSN for the workflow state (default: SQLite state.db in PROCOS_HOME)", redact=True),
    Option("webhook_url", "PROCOS_WEBHOOK_URL", None, "str", "POST every event there as JSON", redact=True),
    Option("endpoint", "VECTOR_ENDPOINT", None, "str", "the store URI used when a command omits it", redact=True),
    Option("processes", "PROCOS_PROCESSES", [], "paths", "extra folders of BPMN process files"),
    Option("trusted_keys", "PROCOS_TRUSTED_KEYS", [], "list", "fingerprints of the OpenPGP keys whose "
           "bundle signatures are trusted"),
    Option("signing_key", "PROCOS_SIGNING_KEY", None, "str", "the OpenPGP key the export process signs with"),
    Option("age_identity", "PROCOS_AGE_IDENTITY", None, "str", "an age identity file for encrypted bundles"),
    Option("queue_dir", "PROCOS_QUEUE_DIR", None, "str", "data folder of the embedded PostgreSQL that holds the "
           "job queue when PROCOS_STATE_DSN is unset (default PROCOS_HOME/queue-pg)"),
    Option("worker_lease_seconds", "PROCOS_WORKER_LEASE_SECONDS", None, "str", "seconds a worker may go "
           "without a heartbeat before another worker resumes its instances (default 30)"),
)
BY_KEY = {o.key: o for o in OPTIONS}


def default_home(env: Mapping[str, str]) -> Path:
    """``$XDG_DATA_HOME/procos``, else ``~/.local/share/procos``."""
    xdg = env.get("XDG_DATA_HOME")
    base = Path(xdg).expanduser() if xdg else Path(env.get("HOME") or Path.home()) / ".local" / "share"
    return base / "procos"


def home_dir(env: Mapping[str, str] | None = None) -> Path:
    """``PROCOS_HOME``, else the per-user default (absolute; not created)."""
    env = os.environ if env is None else env
    raw = env.get("PROCOS_HOME")
    return (Path(raw).expanduser() if raw else default_home(env)).resolve()


@dataclass(frozen=True)
class Config:
    """The effective settings and where each came from (``env PROCOS_ENV``, ``file PATH``, ``default``)."""

    home: Path
    home_source: str
    path: Path
    values: dict[str, Any] = field(default_factory=dict)
    sources: dict[str, str] = field(default_factory=dict)

    def get(self, key: str) -> Any:
        return self.values[key]

    @property
    def environment(self) -> str:
        return self.values["environment"]

    def show(self) -> dict[str, Any]:
        """Every setting with its source, URIs redacted: ``{"KEY": {"value", "source", "env"}}``."""
        from engine.secrets import redact_text

        out: dict[str, Any] = {
            "home": {"value": str(self.home), "source": self.home_source, "env": "PROCOS_HOME"},
            "config_file": {"value": str(self.path), "source": "exists" if self.path.is_file() else "absent",
                            "env": "PROCOS_CONFIG"},
        }
        for option in OPTIONS:
            value = self.values[option.key]
            if option.redact and isinstance(value, str):
                value = redact_text(value)
            out[option.key] = {"value": value, "source": self.sources[option.key], "env": option.env}
        return out


def _parse(option: Option, raw: Any, where: str) -> Any:
    if option.kind == "str":
        if raw is None:
            return None
        if not isinstance(raw, str | int | float):
            raise ConfigError(f"{option.key} in {where} must be a string, got {type(raw).__name__}")
        return str(raw).strip() or None
    if isinstance(raw, str):
        sep = os.pathsep if option.kind == "paths" else ","
        items = [p.strip() for p in raw.split(sep)]
    elif isinstance(raw, list) and all(isinstance(p, str) for p in raw):
        items = [p.strip() for p in raw]
    else:
        raise ConfigError(f"{option.key} in {where} must be a list of strings")
    return [p for p in items if p]


def _read_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    import yaml

    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ConfigError(f"config file {path} cannot be read: {exc}",
                          hint="fix the file (a YAML mapping such as 'environment: prod') or set PROCOS_CONFIG"
                          ) from exc
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ConfigError(f"config file {path} must be a YAML mapping of settings",
                          hint="for example:\nenvironment: prod\nprocesses: [/srv/procos/processes]")
    unknown = sorted(set(map(str, doc)) - set(BY_KEY))
    if unknown:
        raise ConfigError(f"config file {path} has unknown setting(s) {', '.join(unknown)}",
                          hint=f"known settings: {', '.join(BY_KEY)}")
    return doc


def load_config(env: Mapping[str, str] | None = None) -> Config:
    """Read the configuration: environment variables, then the config file, then defaults."""
    env = os.environ if env is None else env
    home = home_dir(env)
    home_source = "env PROCOS_HOME" if env.get("PROCOS_HOME") else "default"
    path = Path(env["PROCOS_CONFIG"]).expanduser().resolve() if env.get("PROCOS_CONFIG") else home / "config.yaml"
    doc = _read_file(path)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for option in OPTIONS:
        if env.get(option.env):
            values[option.key] = _parse(option, env[option.env], f"${option.env}")
            sources[option.key] = f"env {option.env}"
        elif option.key in doc:
            values[option.key] = _parse(option, doc[option.key], str(path))
            sources[option.key] = f"file {path}"
        else:
            values[option.key] = list(option.default) if isinstance(option.default, list) else option.default
            sources[option.key] = "default"
    env_value = values["environment"] or "prod"
    if env_value not in ENVIRONMENTS:
        raise ConfigError(f"environment {env_value!r} (from {sources['environment']}) is not dev or prod",
                          hint="set PROCOS_ENV=prod or PROCOS_ENV=dev; unset means prod")
    values["environment"] = env_value
    return Config(home=home, home_source=home_source, path=path, values=values, sources=sources)


def environment(env: Mapping[str, str] | None = None) -> str:
    """The deployment's environment, ``dev`` or ``prod`` (unset: ``prod``)."""
    return load_config(env).environment
