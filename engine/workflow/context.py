"""The ``ctx`` a versioned script's ``run(ctx)`` receives.

Scripts stay thin: they read and write ``ctx.data`` and call the library through ``ctx``.

- ``ctx.data``: the task's data, a ``dict`` of JSON values only (str, int, float, bool, None, lists,
  dicts with str keys). Whatever the script leaves there becomes the task's output; anything that is not
  JSON fails the task with a clear error.
- ``ctx.instance_id``, ``ctx.process``, ``ctx.task_id`` (BPMN id), ``ctx.task_name``, ``ctx.started_by``,
  ``ctx.environment`` (``data["environment"]``: the deployment's, set at start; ``"prod"`` if absent), ``ctx.home`` (``PROCOS_HOME``).
- ``ctx.emit(event, **fields)``: append an event (events.jsonl, state DB, webhook).
- ``ctx.log(message)``: add a line to the instance's history.
- ``ctx.progress(done, total, unit)``: the step's progress (library calls report theirs by themselves).
- ``ctx.open_repository(uri, **kw)``: :func:`engine.repository.open_repository`.
- ``ctx.api``: the library's front door module :mod:`engine.api`; ``ctx.export_snapshot``,
  ``ctx.verify_snapshot``, ``ctx.import_snapshot``, ``ctx.validate`` call the functions of that name.
- ``ctx.on_cancel(op, **args)`` / ``ctx.cancel_done(op)``: register (and drop) an undo action that
  ``procos instance cancel`` runs if the instance is cancelled in between, e.g. clearing a freeze
  flag this instance set. ``op`` is one of :data:`CANCEL_ACTIONS`; registrations live in
  ``data["on_cancel"]``.
"""

from __future__ import annotations

import importlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

CANCEL_ACTIONS = {
    "resume_ingestion": ("uri",),  # engine.api.resume_ingestion(uri): clear a freeze flag
    "abort_export": ("staging",),  # engine.api.abort_export(staging): remove an unfinished bundle
    "remove_fetched": ("folder",),  # engine.api.remove_fetched(folder): remove a pulled copy of an S3 bundle
}


class ScriptContext:
    """The documented surface a script may use; see the module docstring."""

    def __init__(self, *, data: dict, instance_id: str, process: str, task_id: str, task_name: str,
                 started_by: str, home: Path, emit: Callable[[str, dict], None],
                 log: Callable[[str], None]) -> None:
        self.data = data
        self.instance_id = instance_id
        self.process = process
        self.task_id = task_id
        self.task_name = task_name
        self.started_by = started_by
        self.home = home
        self._emit = emit
        self._log = log

    @property
    def environment(self) -> str:
        return str(self.data.get("environment", "prod"))

    def emit(self, event: str, **fields: Any) -> None:
        """Record ``event`` with ``fields`` (JSON values) for this instance."""
        self._emit(event, fields)

    def log(self, message: str) -> None:
        """Add ``message`` to the instance's history."""
        self._log(str(message))

    def progress(self, done: int, total: int | None = None, unit: str = "rows", op: str | None = None) -> None:
        """Report the step's progress (shown by ``procos instance show`` and the panel)."""
        from engine import progress

        progress.update(op or self.task_id, done, total, unit)

    def on_cancel(self, op: str, **args: Any) -> None:
        """Have a cancel of this instance run ``engine.api.<op>(**args)`` until :meth:`cancel_done`."""
        if op not in CANCEL_ACTIONS or set(args) != set(CANCEL_ACTIONS[op]):
            raise ValueError(f"on_cancel({op!r}, {sorted(args)}): the cancel actions are "
                             + ", ".join(f"{k}({', '.join(v)})" for k, v in CANCEL_ACTIONS.items()))
        self.data.setdefault("on_cancel", {})[op] = dict(args)

    def cancel_done(self, op: str) -> None:
        """The undo action ``op`` is no longer needed (the step it undoes was undone or completed)."""
        actions = self.data.get("on_cancel") or {}
        actions.pop(op, None)
        if not actions:
            self.data.pop("on_cancel", None)

    def open_repository(self, uri: str, **kwargs: Any) -> Any:
        from engine.repository import open_repository

        return open_repository(uri, **kwargs)

    @property
    def api(self) -> Any:
        return importlib.import_module("engine.api")

    def export_snapshot(self, *args: Any, **kwargs: Any) -> Any:
        return self.api.export_snapshot(*args, **kwargs)

    def verify_snapshot(self, *args: Any, **kwargs: Any) -> Any:
        return self.api.verify_snapshot(*args, **kwargs)

    def import_snapshot(self, *args: Any, **kwargs: Any) -> Any:
        return self.api.import_snapshot(*args, **kwargs)

    def validate(self, *args: Any, **kwargs: Any) -> Any:
        return self.api.validate(*args, **kwargs)


def non_json_paths(value: Any, path: str = "data") -> list[str]:
    """Every place in ``value`` that is not a plain JSON value, as ``data["key"][0]`` paths."""
    if value is None or isinstance(value, (str, bool, int)):
        return []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [f"{path} (non-finite float {value})"]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in non_json_paths(v, f"{path}[{i}]")]
    if isinstance(value, dict):
        bad = []
        for k, v in value.items():
            if not isinstance(k, str):
                bad.append(f"{path} key {k!r} ({type(k).__name__})")
            else:
                bad.extend(non_json_paths(v, f"{path}[{k!r}]"))
        return bad
    return [f"{path} ({type(value).__name__})"]
