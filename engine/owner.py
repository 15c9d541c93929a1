"""Who holds something (a freeze, a staging folder, an unpack folder), and whether that process still lives.

An *owner* is a plain JSON dict naming one process: ``{"host", "boot_id", "pid", "started"}``
(``started`` is the process's start time, seconds since the epoch, as the kernel reports it), plus
whatever the caller adds (``kind``, ``instance_id``, ...). It is written next to what it holds so
that another process can tell a live holder from the leftover of a killed one:

- same host and same boot: the holder is alive while a process with that pid exists *and* started
  at that time (a pid reused by a later process does not count);
- same host, another boot (the machine restarted): the holder is gone;
- another host: this process cannot tell (:func:`alive` returns None); leases decide there.
"""

from __future__ import annotations

import hashlib
import os
import socket
from functools import lru_cache
from typing import Any

START_TOLERANCE = 0.05  # seconds: the same process reports the same start time; a reused pid does not


@lru_cache(maxsize=1)
def boot_id() -> str:
    """This kernel boot's id (Linux), or ``""`` where the system does not expose one."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as fh:
            return fh.read().strip()
    except OSError:
        return ""


def process_start(pid: int) -> float | None:
    """When process ``pid`` started (seconds since the epoch), or None when there is no such process."""
    import psutil

    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:  # killed, not yet reaped: gone for our purposes
            return None
        return float(proc.create_time())
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return None


def this_process(**fields: Any) -> dict[str, Any]:
    """The owner record of the calling process, with ``fields`` added (``kind``, ``instance_id``, ...)."""
    pid = os.getpid()
    started = process_start(pid)
    return {"host": socket.gethostname(), "boot_id": boot_id(), "pid": pid,
            "started": round(started, 3) if started is not None else None, **fields}


def alive(owner: dict[str, Any] | None) -> bool | None:
    """Whether the process an owner record names still runs: True, False, or None (another host)."""
    if not isinstance(owner, dict):
        return False
    if owner.get("host") != socket.gethostname():
        return None
    if owner.get("boot_id") and boot_id() and owner["boot_id"] != boot_id():
        return False
    pid, started = owner.get("pid"), owner.get("started")
    if isinstance(pid, bool) or not isinstance(pid, int) or pid <= 0:
        return False
    import psutil

    try:
        now_started = process_start(pid)
    except psutil.AccessDenied:  # it exists, but is not ours to inspect: count it as alive
        return True
    if now_started is None:
        return False
    if isinstance(started, int | float) and not isinstance(started, bool):
        return abs(now_started - float(started)) <= START_TOLERANCE
    return True  # a record without a start time: the pid alone says it


def same_process(a: dict[str, Any] | None, b: dict[str, Any] | None) -> bool:
    """Whether two owner records name the same process (host, boot, pid and start time)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return all(a.get(k) == b.get(k) for k in ("host", "boot_id", "pid", "started"))


def describe(owner: dict[str, Any] | None) -> str:
    """``pid 123 on host vm (instance 3f2a...)`` for messages."""
    if not isinstance(owner, dict):
        return "nobody"
    text = f"pid {owner.get('pid')} on host {owner.get('host')}"
    if owner.get("instance_id"):
        text += f" (process instance {owner['instance_id']})"
    elif owner.get("kind"):
        text += f" ({owner['kind']})"
    return text


def _host_key() -> str:
    return hashlib.sha256(f"{socket.gethostname()}\0{boot_id()}".encode()).hexdigest()[:8]


def token() -> str:
    """A short file-name-safe name of the calling process: ``<host and boot hash>-<pid>-<start ms>``."""
    me = this_process()
    return f"{_host_key()}-{me['pid']}-{int(round((me['started'] or 0) * 1000))}"


def token_alive(text: str) -> bool | None:
    """:func:`alive` for a :func:`token`: None when it is another host's (or another boot's) or unreadable."""
    parts = text.split("-")
    if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
        return None
    if parts[0] != _host_key():
        return None
    return alive({"host": socket.gethostname(), "boot_id": boot_id(), "pid": int(parts[1]),
                  "started": int(parts[2]) / 1000})
