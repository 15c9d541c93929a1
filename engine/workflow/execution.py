"""Spiff's script engine, replaced: only pinned script tasks run code, expressions never run Python.

A script task's spec carries a stub made by :meth:`ResolvedScript.to_stub` (the script's source, pin
and code). :class:`ProcosScriptEngine` runs it only when the task is a script task without pre/post
scripts, the stub is that task's own script, and its (task, source, sha256) is among the pins recorded
in the instance's ``started`` history entry (:meth:`ScriptHooks.pins`) with code that hashes to the pin.
Anything else (a ``preScript``, a stub forged into a saved instance, inline code) is refused with
:class:`ScriptRefused` and audited as ``refused``. An admitted script gets a :class:`ScriptContext`;
the task data must still be JSON afterwards. A failure (exception or non-JSON data) becomes a BPMN error
with code ``script_failed`` when an error boundary event in the model can catch it (the task is left in
ERROR and the boundary path runs); otherwise :class:`ScriptFailed` is raised and the instance halts.
A script late past its ``procos:timeout`` fails the same way (:mod:`.timeouts`).

Every expression Spiff evaluates (conditions, timers, loops; through the engine or its environment)
goes through :func:`conditions.evaluate`, the restricted evaluator; service calls are refused.
"""

from __future__ import annotations

import copy
from typing import Any, Protocol

from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.bpmn.specs.mixins.script_task import ScriptTask
from SpiffWorkflow.bpmn.util.event import BpmnEvent
from SpiffWorkflow.spiff.specs.event_definitions import ErrorEventDefinition

from engine import progress
from engine.errors import ProcosError, ScriptFailed, ScriptRefused

from . import conditions
from .context import ScriptContext, non_json_paths
from .scripts import ResolvedScript, describe_failure, run_script, sha256_hex
from .timeouts import ScriptTimeout, run_with_timeout

SCRIPT_FAILED = "script_failed"


class ScriptHooks(Protocol):
    """What the runner provides to the script engine."""

    def pins(self) -> set[tuple[str, str, str]]:
        """(BPMN task id, script source, sha256) of every script pinned when the instance started."""
        ...

    def context(self, task: Any, script: ResolvedScript, data: dict) -> ScriptContext: ...

    def script_started(self, task: Any, script: ResolvedScript) -> None: ...

    def script_finished(self, task: Any, script: ResolvedScript, error: ProcosError | None) -> None: ...

    def progress_sink(self, task: Any) -> Any: ...

    def timeout(self, task: Any) -> float | None:
        """The task's ``procos:timeout`` in seconds as pinned when the instance started (None: no limit)."""
        ...

    def script_refused(self, task: Any, script: ResolvedScript | None, error: ScriptRefused) -> None: ...


class RestrictedEnvironment(BasePythonScriptEngineEnvironment):
    """Spiff's expression environment (also called directly by Spiff): the restricted evaluator only."""

    def evaluate(self, expression: str, context: dict, external_context: dict | None = None) -> Any:
        return conditions.evaluate(expression, {**(external_context or {}), **context})

    def execute(self, script: str, context: dict, external_context: dict | None = None) -> bool:
        raise ScriptRefused("code outside a pinned script task is never run", hint="use a script task "
                            'with procos:script="scripts/v1/NAME.py" procos:sha256="..."')

    def call_service(self, context: dict, **kwargs: Any) -> Any:
        raise ScriptRefused("service tasks are not supported", hint="use a pinned script task")


class ProcosScriptEngine(PythonScriptEngine):
    def __init__(self, hooks: ScriptHooks) -> None:
        super().__init__(environment=RestrictedEnvironment())
        self.hooks = hooks

    def validate(self, expression: str) -> None:
        conditions.check(expression)

    def evaluate(self, task: Any, expression: str, external_context: dict | None = None) -> Any:
        where = f"task {task.task_spec.bpmn_id or task.task_spec.name!r}"
        return conditions.evaluate(expression, {**(external_context or {}), **task.data}, where=where)

    def call_service(self, task: Any, **kwargs: Any) -> Any:
        raise ScriptRefused(f"task {task.task_spec.bpmn_id!r}: service tasks are not supported",
                            hint="use a pinned script task")

    def execute(self, task: Any, script: str, external_context: dict | None = None) -> bool:
        spec = task.task_spec
        resolved = None
        try:
            resolved = ResolvedScript.from_stub(script, where=f"task {spec.bpmn_id!r}")
            admit(spec, script, resolved, self.hooks.pins())
        except ScriptRefused as exc:
            self.hooks.script_refused(task, resolved, exc)
            raise
        task_name = spec.bpmn_name or spec.bpmn_id
        data = copy.deepcopy(task.data)
        ctx = self.hooks.context(task, resolved, data)
        self.hooks.script_started(task, resolved)
        def late(seconds: float) -> str:
            return (f"script task {task_name!r} ({spec.bpmn_id}) in {resolved.process_file}: script "
                    f"{resolved.source} did not finish within {seconds:g} s (procos:timeout); it was stopped")

        try:
            with progress.reporting(self.hooks.progress_sink(task), min_interval=1.0):
                run_with_timeout(lambda: run_script(resolved, ctx), self.hooks.timeout(task), late)
            _check_json(ctx.data, task_name, resolved)
        except ScriptRefused as exc:
            self.hooks.script_finished(task, resolved, exc)
            raise
        except Exception as exc:  # any script failure becomes a ScriptFailed with provenance
            if isinstance(exc, ScriptTimeout):
                exc.line_number, exc.error_line = 0, ""
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


def admit(spec: Any, script: str, resolved: ResolvedScript | None, pins: set[tuple[str, str, str]]) -> None:
    """Raise ScriptRefused unless ``script`` is ``spec``'s own pinned script (see the module docstring)."""
    where = f"task {spec.bpmn_id or spec.name!r}"
    if not isinstance(spec, ScriptTask):
        raise ScriptRefused(f"{where} ({type(spec).__name__}) is not a script task: code attached to it "
                            "(preScript, postScript) is never run", hint="the process file or the saved "
                            "instance holds code outside script tasks; remove it")
    if getattr(spec, "prescript", None) or getattr(spec, "postscript", None):
        raise ScriptRefused(f"{where} has a preScript or postScript; nothing of it runs",
                            hint="remove spiffworkflow:preScript/postScript")
    if script != spec.script or resolved is None:
        raise ScriptRefused(f"{where}: inline script code is refused; every script task names a versioned script",
                            hint='use procos:script="scripts/v1/NAME.py" procos:sha256="..." on the task')
    if resolved.task != spec.bpmn_id:
        raise ScriptRefused(f"{where}: its embedded script was pinned for task {resolved.task!r}; refused",
                            hint="the saved instance was altered")
    if sha256_hex(resolved.code.encode("utf-8")) != resolved.sha256:
        raise ScriptRefused(f"{where}: embedded code of {resolved.source} does not match its pin "
                            f"{resolved.sha256}; refused", hint="the saved instance was altered")
    if (spec.bpmn_id, resolved.source, resolved.sha256) not in pins:
        raise ScriptRefused(f"{where}: script {resolved.source} sha256 {resolved.sha256} is not among the "
                            "pins recorded when the instance started; refused",
                            hint="the saved instance was altered; start a new instance")


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
