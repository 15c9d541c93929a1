"""Spiff's script engine, replaced: script tasks run pinned versioned scripts through ``run(ctx)``.

A script task's spec carries a stub made by :meth:`ResolvedScript.to_stub` (the script's source, pin
and code). :class:`ProcosScriptEngine` decodes it, builds the :class:`ScriptContext`, runs the script,
checks that the task data is still JSON and stores it back. A failure (exception or non-JSON data)
becomes a BPMN error with code ``script_failed`` when an error boundary event in the model can catch
it (the task is left in ERROR and the boundary path runs); otherwise :class:`ScriptFailed` is raised
and the instance halts. Either way the task is in ERROR and ``procos instance retry`` can run it again.
Conditions and other expressions are still evaluated by Spiff's Python engine.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.spiff.specs.event_definitions import ErrorEventDefinition

from engine.errors import ProcosError, ScriptFailed, ScriptRefused

from .context import ScriptContext, non_json_paths
from .scripts import ResolvedScript, describe_failure, run_script

SCRIPT_FAILED = "script_failed"


class ScriptHooks(Protocol):
    """What the runner provides to the script engine."""

    def context(self, task: Any, script: ResolvedScript, data: dict) -> ScriptContext: ...

    def script_started(self, task: Any, script: ResolvedScript) -> None: ...

    def script_finished(self, task: Any, script: ResolvedScript, error: ProcosError | None) -> None: ...


class ProcosScriptEngine(PythonScriptEngine):
    def __init__(self, hooks: ScriptHooks) -> None:
        super().__init__()
        self.hooks = hooks

    def execute(self, task: Any, script: str, external_context: dict | None = None) -> bool:
        spec = task.task_spec
        resolved = ResolvedScript.from_stub(script)
        if resolved is None:
            raise ScriptRefused(
                f"task {spec.bpmn_id!r}: inline scripts are not run; every script task names a versioned "
                "script", hint='use procos:script="scripts/v1/NAME.py" procos:sha256="..." on the task')
        task_name = spec.bpmn_name or spec.bpmn_id
        data = copy.deepcopy(task.data)
        ctx = self.hooks.context(task, resolved, data)
        self.hooks.script_started(task, resolved)
        try:
            run_script(resolved, ctx)
            _check_json(ctx.data, task_name, resolved)
        except ScriptRefused as exc:
            self.hooks.script_finished(task, resolved, exc)
            raise
        except Exception as exc:  # any script failure becomes a ScriptFailed with provenance
            failure = exc if isinstance(exc, ScriptFailed) and hasattr(exc, "line_number") \
                else describe_failure(resolved, exc, task_name)
            self.hooks.script_finished(task, resolved, failure)
            if throw_script_failed(task, str(failure)):
                return False  # task goes to ERROR, the boundary path runs
            raise failure from exc
        task.data.clear()
        task.data.update(ctx.data)
        self.hooks.script_finished(task, resolved, None)
        return True


def _check_json(data: Any, task_name: str, script: ResolvedScript) -> None:
    bad = ["data (not a dict)"] if not isinstance(data, dict) else non_json_paths(data)
    if bad:
        err = ScriptFailed(
            f"script task {task_name!r} ({script.task}) in {script.process_file}: script {script.source} "
            f"left values that are not JSON in ctx.data: {', '.join(bad[:5])}",
            hint="keep task data to str, int, float, bool, None, lists and dicts with str keys")
        err.line_number, err.error_line = 0, ""
        raise err


def throw_script_failed(task: Any, message: str) -> bool:
    """Throw BPMN error ``script_failed`` if an error boundary event can catch it; True when caught."""
    event = BpmnEvent(ErrorEventDefinition(SCRIPT_FAILED, code=SCRIPT_FAILED),
                      payload={"script_error": message}, target=task.workflow)
    manager = task.workflow.top_workflow.event_manager
    workflow = task.workflow
    while workflow is not None:
        if any(t.workflow is workflow and t.task_spec.catches(t, event) for t in manager.tasks.values()):
            task.workflow.top_workflow.catch(event)
            return True
        workflow = workflow.parent_workflow
    return False
