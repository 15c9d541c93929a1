"""The worker lease: how long a worker may go without a heartbeat before it is presumed dead.

``PROCOS_WORKER_LEASE_SECONDS`` (or ``worker_lease_seconds`` in config.yaml; default 30). A worker renews
its heartbeat every :func:`heartbeat_interval` seconds (a fifth of the lease) on a thread of its own, so a
long step never lets it lapse. When a worker's heartbeat is older than the lease, another worker retries
the job it held and resumes its instance from the last saved step; the step that was running runs again,
completed steps never do.
"""

from __future__ import annotations

from engine.errors import ConfigError

DEFAULT_LEASE_SECONDS = 30.0


def lease_seconds() -> float:
    from engine.config import load_config

    raw = load_config().get("worker_lease_seconds")
    if raw is None:
        return DEFAULT_LEASE_SECONDS
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"worker_lease_seconds {raw!r} is not a number of seconds",
                          hint="set PROCOS_WORKER_LEASE_SECONDS=30 (or more)") from None
    if value < 1:
        raise ConfigError(f"worker_lease_seconds {raw!r} is below one second", hint="use 1 or more")
    return value


def heartbeat_interval() -> float:
    return max(0.2, lease_seconds() / 5)
