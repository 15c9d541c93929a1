"""Script timeouts: a script task runs on a watchdog thread and fails with :class:`ScriptTimeout` when late.

Each script task may set ``procos:timeout`` (``90``, ``30s``, ``15m``, ``2h``); the process element's own
``procos:timeout`` is the default of its script tasks; without either a script has no limit. The limits
are recorded with the pins in the instance's ``started`` history entry, so a saved instance keeps the
limits it started with.

Why a thread and not a subprocess: a script's ``ctx`` (events, history, progress, the passwords lent to
this run only) lives in this process, and a script is mostly waiting on a store or the disk. Starting a
thread costs microseconds (a forked or spawned subprocess costs milliseconds to a second and would need
every ``ctx`` call sent over a pipe). When the limit passes, the thread is asked to stop (an exception is
raised inside it at its next Python instruction, so a script sleeping or looping in Python unwinds and
runs its ``finally`` blocks) and the step fails at once, so the process's error path runs (the export
clears its freeze flag). A thread blocked inside C code (a socket read) cannot be stopped that way: it is
abandoned, :func:`abandoned` turns true, and a worker then stops taking jobs and exits once its other
instances reach a step boundary, so the abandoned thread ends with the process.
"""

from __future__ import annotations

import contextvars
import ctypes
import re
import threading
from collections.abc import Callable
from typing import Any

from engine.errors import ScriptFailed, WorkflowError

STOP_GRACE_SECONDS = 5.0  # how long a late script gets to unwind after it was asked to stop
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_abandoned = threading.Event()


class ScriptTimeout(ScriptFailed):
    """A script task did not finish within its ``procos:timeout``; the step was stopped."""


class _Stop(BaseException):
    """Raised inside a late script's thread (BaseException: a script's ``except Exception`` cannot keep it)."""


def parse_duration(text: str | int | float | None, where: str = "duration") -> float | None:
    """Seconds from ``90``, ``30s``, ``15m``, ``2h`` or ``1d``; None for None or empty; WorkflowError otherwise."""
    if text is None or (isinstance(text, str) and not text.strip()):
        return None
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION.match(text)
        if not match:
            raise WorkflowError(f"{where}: {text!r} is not a duration", hint="write it like 90, 30s, 15m, 2h or 1d")
        seconds = float(match.group(1)) * _UNITS[match.group(2)]
    if seconds <= 0:
        raise WorkflowError(f"{where}: {text!r} must be more than zero seconds")
    return seconds


def abandoned() -> bool:
    """Whether a late script's thread could not be stopped in this process (it is still running)."""
    return _abandoned.is_set()


def run_with_timeout(fn: Callable[[], Any], seconds: float | None, describe: Callable[[float], str]) -> Any:
    """Run ``fn()`` (in this context's copy); raise ScriptTimeout(``describe(seconds)``) if it is late."""
    if seconds is None:
        return fn()
    context = contextvars.copy_context()  # progress sinks and lent secrets follow the script
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = context.run(fn)
        except _Stop:
            outcome["stopped"] = True
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller's thread below
            outcome["error"] = exc

    thread = threading.Thread(target=target, name="procos-script", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        _interrupt(thread)
        thread.join(STOP_GRACE_SECONDS)
        if thread.is_alive():
            _abandoned.set()
        raise ScriptTimeout(describe(seconds), hint="find out why the step hangs (a store or disk that does not "
                            "answer), or raise procos:timeout on the task; then: procos instance retry ID")
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _interrupt(thread: threading.Thread) -> None:
    """Raise :class:`_Stop` inside ``thread`` at its next Python instruction."""
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread.ident or 0), ctypes.py_object(_Stop))
