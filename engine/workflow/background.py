"""Run an instance in a process of its own, so a caller (the web panel) never runs a long step itself.

The caller has done everything that needs the caller's identity (authorization, the audit entry, the
decision on a task) and holds the instance. :func:`spawn` starts ``python -m engine.workflow.background
INSTANCE_ID``, which waits on its standard input; the caller then records the child as the instance's
runner (pid, host, process start time: :func:`~.runner.runner_alive` sees it alive from then on) and
sends it, over that pipe, the passwords lent to this run (never written anywhere). The child runs the
instance only if it is the recorded runner, so it can never be used to run someone else's instance.

The child outlives the caller (its own session; output in ``PROCOS_HOME/runners/ID.log``): restarting
the panel does not stop an export. A child that dies leaves the instance ``interrupted``, as any runner.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from typing import Any

from engine.files import private_dir


def spawn(settings: Any, instance_id: str) -> subprocess.Popen:
    """Start the runner process for ``instance_id``; it waits for :func:`release` before doing anything."""
    logs = settings.home / "runners"
    private_dir(logs)
    log = open(logs / f"{instance_id}.log", "ab")  # noqa: SIM115 - handed to the child, closed below
    try:
        child = subprocess.Popen([sys.executable, "-m", "engine.workflow.background", instance_id],
                                 stdin=subprocess.PIPE, stdout=log, stderr=log, start_new_session=True,
                                 close_fds=True)
    finally:
        log.close()
    threading.Thread(target=child.wait, name=f"reap-{instance_id}", daemon=True).start()  # no zombies
    return child


def identity_of(child: subprocess.Popen) -> tuple[int, str, float]:
    """``(pid, host, create time)`` of the child, as :func:`~.runner.runner_identity` records a runner."""
    import socket

    import psutil

    return child.pid, socket.gethostname(), psutil.Process(child.pid).create_time()


def release(child: subprocess.Popen, secrets: dict[str, str]) -> None:
    """Let the child go, lending it the passwords of this run (through the pipe only)."""
    assert child.stdin is not None
    try:
        child.stdin.write(json.dumps({"secrets": secrets}).encode("utf-8"))
        child.stdin.close()
    except BrokenPipeError:  # the child died already: the instance shows as interrupted
        pass


def abandon(child: subprocess.Popen) -> None:
    """The hand-off failed before the child was recorded: stop it (it has done nothing)."""
    try:
        child.kill()
    except ProcessLookupError:
        pass


def _on_sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt("SIGTERM")


def main(argv: list[str]) -> int:
    from engine.errors import ProcosError
    from engine.secrets import runtime_secrets

    from .service import WorkflowService

    if len(argv) != 1:
        print("usage: python -m engine.workflow.background INSTANCE_ID", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, _on_sigterm)
    message = json.loads(sys.stdin.read() or "{}")
    svc = WorkflowService()
    try:
        result = svc.run_handed_over(argv[0], os.getpid())
        if result is None:
            return 1
        with runtime_secrets(message.get("secrets") or {}):
            out = svc.drive_handed_over(result)
        print(json.dumps({"instance_id": out["instance_id"], "state": out["state"], "outcome": out["outcome"]}))
        return 0
    except ProcosError as exc:
        print(f"Error: {exc.message}", file=sys.stderr)
        return int(exc.exit_code or 1)
    finally:
        svc.close()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
