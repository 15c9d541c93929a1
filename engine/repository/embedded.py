"""Embedded PostgreSQL (the ``pgserver`` wheel): one server per data directory, reused per process.

``postgresql+embedded:PATH`` stores live in a PostgreSQL 16 + pgvector server whose data directory
is ``PATH``. The first open in a process starts the server (about a second) or attaches to one
already running for that directory (started by another process); later opens reuse it. pgserver
stops the server when the last process holding it exits.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from pathlib import Path
from typing import Any

from engine.errors import StoreError

_servers: dict[Path, Any] = {}
_lock = threading.Lock()


def _import_pgserver() -> Any:
    # platformdirs warns at pgserver's import time when XDG_RUNTIME_DIR is unset (it then uses
    # /tmp/runtime-<uid>, which is what we want): keep that noise away from users.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        try:
            import pgserver
        except ImportError as exc:  # pragma: no cover - pgserver is a hard dependency
            raise StoreError("the embedded PostgreSQL server (pgserver) is not installed",
                             hint="pip install pgserver, or use a postgresql:// URI") from exc
    return pgserver


def _forget_dead_handles(datadir: Path) -> None:
    """Drop pids of processes that died without cleaning up (SIGKILL) from pgserver's handle list.

    pgserver stops the server when the last live handle exits; a killed process's pid left in the
    list would otherwise keep the server running forever.
    """
    path = datadir / ".handle_pids.json"
    try:
        pids = json.loads(path.read_text())
    except (OSError, ValueError):
        return
    alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
    if alive != pids:
        path.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


START_ATTEMPTS = 4  # pgserver waits only 10 s for pg_ctl; a busy machine may need longer


def _start(pgserver: Any, path: Path) -> Any:
    """``pgserver.get_server`` with patience: a start that timed out is often still coming up."""
    import subprocess
    import time

    for attempt in range(1, START_ATTEMPTS + 1):
        try:
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
                return pgserver.get_server(path, cleanup_mode="stop")
        except subprocess.TimeoutExpired:
            if attempt == START_ATTEMPTS:
                raise
            time.sleep(2.0 * attempt)  # then look again: the postmaster may be ready by now
    raise AssertionError("unreachable")


def server_uri(datadir: str | os.PathLike[str]) -> str:
    """A libpq URI (database ``postgres``) of the embedded server for ``datadir``, starting it if needed."""
    path = Path(datadir).expanduser().resolve()
    with _lock:
        server = _servers.get(path)
        if server is None:
            pgserver = _import_pgserver()
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                if path.exists():
                    with pgserver.PostgresServer._lock:  # the lock pgserver itself takes for this list
                        _forget_dead_handles(path)
                server = _start(pgserver, path)
            except Exception as exc:  # pgserver raises plain errors (CalledProcessError, OSError, ...)
                log = path / "log"
                raise StoreError(f"cannot start the embedded PostgreSQL server in {path}: {exc}",
                                 hint=f"see the server log {log}" if log.exists()
                                 else "check that the directory is writable and not used by another server"
                                 ) from exc
            _servers[path] = server
    return server.get_uri()
