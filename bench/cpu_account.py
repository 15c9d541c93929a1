"""CPU seconds spent by a benchmark phase: by the phase's own process (threads and child processes
included) and by the PostgreSQL server (postmaster, its background processes and every backend).

On a machine with C cores a phase of W seconds wall time can spend at most C x W CPU seconds. A
phase whose client and server CPU together come near that bound is CPU-bound: it goes faster only by
doing less work, never by overlapping more. ``bench_restore.py`` reports both next to every time.
"""

from __future__ import annotations

import os
from pathlib import Path

PGDATA_ENV = "PROCOS_BENCH_PGDATA"  # set by the benchmark's parent; its spawned phases inherit it


def own_cpu() -> float:
    """User + system CPU seconds of this process so far, its threads and its waited-for children included."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def server_cpu(pgdata: str | os.PathLike[str] | None = None) -> float | None:
    """User + system CPU seconds of the PostgreSQL server whose data folder is ``pgdata`` (default
    ``$PROCOS_BENCH_PGDATA``): the postmaster, its live children and those already ended (whose
    times the postmaster collected when it reaped them). None when the server cannot be read."""
    import psutil

    folder = pgdata or os.environ.get(PGDATA_ENV)
    if not folder:
        return None
    try:
        pid = int(Path(folder, "postmaster.pid").read_text().split()[0])
        postmaster = psutil.Process(pid)
        t = postmaster.cpu_times()
        total = t.user + t.system + t.children_user + t.children_system
        for child in postmaster.children():
            try:
                c = child.cpu_times()
                total += c.user + c.system
            except psutil.Error:  # ended meanwhile: its time is in children_* at the next reading
                pass
        return total
    except (OSError, ValueError, IndexError, psutil.Error):
        return None
