"""Where the workflow engine keeps its state and finds its processes (environment-driven paths).

- ``PROCOS_HOME`` (default: per user, see :mod:`engine.config`): state DB, events.jsonl, roles.yaml,
  script cache. Every value may also come from ``$PROCOS_HOME/config.yaml``; the variable wins.
- ``PROCOS_ENV``: the deployment's environment, dev or prod (unset: prod).
- ``PROCOS_PROCESSES``: extra folders of BPMN files, separated like ``PATH``; a process id is defined once.
- ``PROCOS_STATE_DSN``: a ``postgresql://`` DSN; instances go to PostgreSQL instead of SQLite.
- ``PROCOS_WEBHOOK_URL``: events are also POSTed there as JSON.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # the folder that holds engine/, processes/, scripts/
INSTALLED_ROOT = Path(sys.prefix) / "share" / "procos"  # where a wheel install puts processes/ and scripts/


@dataclass(frozen=True)
class Settings:
    home: Path
    process_dirs: tuple[Path, ...]
    state_dsn: str | None = None
    webhook_url: str | None = None
    webhook_attempts: int = 3
    environment: str = "prod"  # the deployment's: dev | prod

    @property
    def events_path(self) -> Path:
        return self.home / "events.jsonl"

    @property
    def roles_path(self) -> Path:
        return self.home / "roles.yaml"

    @property
    def state_db_path(self) -> Path:
        return self.home / "state.db"

    @property
    def script_cache(self) -> Path:
        return self.home / "scripts-cache"


def builtin_process_dirs() -> list[Path]:
    """The shipped ``processes/`` folder: next to the ``engine`` package (a source checkout or an
    editable install), else under ``<prefix>/share/procos`` (a wheel install)."""
    for root in (PACKAGE_ROOT, INSTALLED_ROOT):
        if (root / "processes").is_dir():
            return [root / "processes"]
    return []


def load_settings(env: dict[str, str] | None = None, *, environment: str | None = None) -> Settings:
    """Read the settings from ``env`` (default: ``os.environ``) and the config file; nothing is created.

    ``environment`` overrides the deployment's (the demo runs in dev in its own folder).
    """
    from engine.config import load_config

    config = load_config(env)
    extra = [Path(p).expanduser().resolve() for p in config.get("processes")]
    dirs: list[Path] = []
    for d in [*extra, *builtin_process_dirs()]:
        if d not in dirs:
            dirs.append(d)
    return Settings(
        home=config.home,
        process_dirs=tuple(dirs),
        state_dsn=config.get("state_dsn"),
        webhook_url=config.get("webhook_url"),
        environment=environment or config.environment,
    )
