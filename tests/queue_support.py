"""Helpers for tests that run workers and schedulers: a private queue database and procos daemons."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def new_database(pg_dsn: str) -> tuple[str, Callable[[], None]]:
    """A fresh database on the session's PostgreSQL: its DSN, and a function that drops it."""
    import psycopg

    name = f"q_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base, _, query = pg_dsn.partition("?")
    dsn = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")

    def drop() -> None:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    return dsn, drop


def wait_for(predicate: Callable[[], object], timeout: float = 30.0, what: str = "condition") -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Daemons:
    """``procos`` daemons (workers, schedulers) started with one environment; stopped at the end."""

    def __init__(self, env: dict[str, str], logs: Path) -> None:
        self.env, self.logs, self.procs = env, logs, []
        logs.mkdir(parents=True, exist_ok=True)

    def start(self, *args: str, token: str | None = None) -> subprocess.Popen:
        env = dict(self.env)
        if token:
            env["PROCOS_TOKEN"] = token
        log = open(self.logs / f"{args[0]}-{len(self.procs)}.log", "w")  # noqa: SIM115 - closed by the process end
        proc = subprocess.Popen([sys.executable, "-m", "engine.cli", *args], env=env, cwd=ROOT, stdout=log,
                                stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, timeout: float = 60) -> str:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=timeout)
        index = self.procs.index(proc)
        name = next(self.logs.glob(f"*-{index}.log"))
        return name.read_text()

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
