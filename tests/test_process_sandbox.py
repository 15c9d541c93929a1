"""Processes are data, not code: hostile BPMN files in PROCOS_PROCESSES try to run Python and must fail.

Every hostile payload would create a marker file if any of it ran; each test asserts the refusal *and*
that the marker (and the counter file the fixture's scripts write) does not exist.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from xml.sax.saxutils import escape

import pytest
from sandbox_support import SHIPPED, hostile_project, stub, touch
from workflow_support import FIXTURES, copy_project, make_env

from engine.errors import ProcessNotFound, ProcessRefused


@pytest.fixture
def marker(tmp_path) -> Path:
    return tmp_path / "pwned"


def assert_refused_at_load(env, bpmn, marker, *expected):
    svc = env.service()
    with pytest.raises(ProcessRefused) as caught:
        svc.start_process("fx_approval", {"counter": str(env.counter)}, user="carol")
    message = str(caught.value)
    assert str(bpmn) in message, message
    for part in expected:
        assert part in message, message
    assert not marker.exists() and not env.counter.exists()
    assert svc.list_instances() == []
    [listed] = [p for p in svc.list_processes() if p["file"] == str(bpmn)]
    assert listed["version"] is None and part in listed["error"]
    return message


# --- conditions -----------------------------------------------------------------------------------

HOSTILE_CONDITIONS = [
    ('__import__("os").system("touch {m}") == 0', "a call"),
    ('environment.__class__.__mro__ == 1', "attribute access"),
    ('(lambda: __import__("os").system("touch {m}"))() == 0', "a call"),
    ('[__import__("os").system("touch {m}") for x in [1]] == [0]', "a comprehension"),
    ('environment["__class__"] == 1', "dunder key '__class__'"),
    ('__builtins__ == 1', "dunder name __builtins__"),
    ('f"{{environment}}" == "prod"', "an f-string"),
    ('(x := 1) == 1', "assignment expression"),
]


@pytest.mark.parametrize(("condition", "construct"), HOSTILE_CONDITIONS, ids=[c[1] for c in HOSTILE_CONDITIONS])
def test_hostile_condition_is_refused_at_load_and_nothing_runs(tmp_path, monkeypatch, marker, condition,
                                                                construct):
    text = escape(condition.format(m=marker))
    env, bpmn = hostile_project(tmp_path, monkeypatch, lambda t: t.replace('environment == "prod"', text))
    assert_refused_at_load(env, bpmn, marker, "sequenceFlow Flow_prod", construct)


def test_camunda_and_feel_conditions_are_still_named_as_such(tmp_path, monkeypatch, marker):
    env, bpmn = hostile_project(tmp_path, monkeypatch, lambda t: t.replace('environment == "prod"', "=approved"))
    assert_refused_at_load(env, bpmn, marker, "not a Python expression", "FEEL are not supported")


def test_ordinary_conditions_route_the_instance(tmp_path, monkeypatch):
    env, _ = hostile_project(tmp_path, monkeypatch,
                             lambda t: t.replace('environment == "prod"', 'environment == "prod" and count &gt; 0'))
    svc = env.service()
    waiting = svc.start_process("fx_approval", {"counter": str(env.counter), "count": 2})
    assert waiting["state"] == "waiting"
    auto = svc.start_process("fx_approval", {"counter": str(env.counter), "count": 0})
    assert auto["state"] == "completed" and auto["data"]["approved"] is True  # took the dev (default) path


def test_a_condition_naming_an_unknown_variable_fails_the_instance_clearly(tmp_path, monkeypatch):
    env, _ = hostile_project(tmp_path, monkeypatch, lambda t: t.replace('environment == "prod"',
                                                                        'enviroment == "prod"'))
    svc = env.service()
    result = svc.start_process("fx_approval", {"counter": str(env.counter)})
    assert result["state"] == "error"
    error = svc.show_instance(result["instance_id"])["error"]
    assert "unknown variable 'enviroment'" in error and "environment" in error


# --- code attached to tasks -----------------------------------------------------------------------

def _extension(task_open: str, body: str):
    return lambda t: t.replace(task_open, f"{task_open}\n      <bpmn:extensionElements>{body}</bpmn:extensionElements>")


APPROVE = '<bpmn:userTask id="Approve" name="Approve the change">'
FREEZE = re.compile(r'<bpmn:scriptTask id="Freeze" [^>]*>')


@pytest.mark.parametrize("kind", ["stub", "plain"])
def test_prescript_on_a_user_task_is_refused(tmp_path, monkeypatch, marker, kind):
    code = touch(marker) + "run(None)\n" if kind == "plain" else touch(marker)
    body = escape(stub(code, task="Approve") if kind == "stub" else code)
    env, bpmn = hostile_project(tmp_path, monkeypatch,
                                _extension(APPROVE, f"<spiffworkflow:preScript>{body}</spiffworkflow:preScript>"))
    message = assert_refused_at_load(env, bpmn, marker, "spiffworkflow:preScript in userTask Approve")
    assert ("stub marker" in message) == (kind == "stub")


def test_postscript_on_a_script_task_is_refused(tmp_path, monkeypatch, marker):
    def edit(text):
        task_open = FREEZE.search(text).group(0)
        body = f"<spiffworkflow:postScript>{escape(touch(marker))}run(None)</spiffworkflow:postScript>"
        return _extension(task_open, body)(text)

    env, bpmn = hostile_project(tmp_path, monkeypatch, edit)
    assert_refused_at_load(env, bpmn, marker, "spiffworkflow:postScript in scriptTask Freeze")


def test_inline_script_is_refused(tmp_path, monkeypatch, marker):
    def edit(text):
        task_open = FREEZE.search(text).group(0)
        code = escape(f"open({str(marker)!r}, 'w')")
        return text.replace(task_open, '<bpmn:scriptTask id="Freeze" name="Freeze">').replace(
            "<bpmn:outgoing>Flow_2</bpmn:outgoing>\n    </bpmn:scriptTask>",
            f"<bpmn:outgoing>Flow_2</bpmn:outgoing>\n      <bpmn:script>{code}</bpmn:script>\n    </bpmn:scriptTask>")

    env, bpmn = hostile_project(tmp_path, monkeypatch, edit)
    assert_refused_at_load(env, bpmn, marker, "inline <bpmn:script> in scriptTask Freeze",
                           "scriptTask Freeze: a script task needs procos:script")


@pytest.mark.parametrize("where", ["documentation", "comment", "char-reference"])
def test_anything_shaped_like_a_stub_is_refused(tmp_path, monkeypatch, marker, where):
    text = escape(stub(touch(marker), task="Approve"))
    if where == "char-reference":  # the raw bytes do not hold the marker; the parsed text does
        text = text.replace("procos:versioned-script", "&#112;rocos:versioned-script")
    body = {"documentation": f"<bpmn:documentation>{text}</bpmn:documentation>",
            "comment": f"<!-- {text.replace('--', '- -')} -->",
            "char-reference": f"<bpmn:documentation>{text}</bpmn:documentation>"}[where]
    env, bpmn = hostile_project(tmp_path, monkeypatch, lambda t: t.replace(APPROVE, APPROVE + body))
    assert_refused_at_load(env, bpmn, marker, "stub marker")


USER_TASK = re.compile(r'<bpmn:userTask id="Approve" name="Approve the change">.*?</bpmn:userTask>', re.S)
FLOWS = "<bpmn:incoming>Flow_prod</bpmn:incoming>\n<bpmn:outgoing>Flow_4</bpmn:outgoing>"


def _replace_approve(element: str, definitions_extra: str = ""):
    def edit(text):
        text = USER_TASK.sub(lambda _: element, text)
        return text.replace("  <bpmn:collaboration", definitions_extra + "\n  <bpmn:collaboration", 1)
    return edit


def code_bearing_elements(m: Path) -> dict:
    boom = escape(f'__import__("os").system("touch {m}")', {'"': "&quot;"})
    return {
        "businessRuleTask": (_replace_approve(
            '<bpmn:businessRuleTask id="Approve"><bpmn:extensionElements><spiffworkflow:calledDecisionId>d'
            f"</spiffworkflow:calledDecisionId></bpmn:extensionElements>{FLOWS}</bpmn:businessRuleTask>"),
            "businessRuleTask Approve: refused (business rule tasks evaluate DMN"),
        "serviceTask": (_replace_approve(
            '<bpmn:serviceTask id="Approve"><bpmn:extensionElements><spiffworkflow:serviceTaskOperator '
            'id="http/GetRequest"><spiffworkflow:parameters><spiffworkflow:parameter id="url" type="str" '
            f'value="{boom}"/></spiffworkflow:parameters></spiffworkflow:serviceTaskOperator>'
            f"</bpmn:extensionElements>{FLOWS}</bpmn:serviceTask>"),
            "serviceTask Approve: refused (service tasks call operators"),
        "message payload": (_replace_approve(
            f'<bpmn:intermediateThrowEvent id="Approve">{FLOWS}<bpmn:messageEventDefinition id="Med" '
            'messageRef="Msg"/></bpmn:intermediateThrowEvent>',
            '<bpmn:message id="Msg" name="m"><bpmn:extensionElements><spiffworkflow:messagePayload>'
            f"{boom}</spiffworkflow:messagePayload></bpmn:extensionElements></bpmn:message>"),
            "spiffworkflow:messagePayload in message Msg"),
        "signal payload": (_replace_approve(
            f'<bpmn:intermediateThrowEvent id="Approve">{FLOWS}<bpmn:signalEventDefinition id="Sed" '
            'signalRef="Sig"/></bpmn:intermediateThrowEvent>',
            '<bpmn:signal id="Sig" name="s"><bpmn:extensionElements><spiffworkflow:payloadExpression>'
            f"{boom}</spiffworkflow:payloadExpression></bpmn:extensionElements></bpmn:signal>"),
            "spiffworkflow:payloadExpression in signal Sig"),
        "timer": (_replace_approve(
            f'<bpmn:intermediateCatchEvent id="Approve">{FLOWS}<bpmn:timerEventDefinition id="Ted">'
            f'<bpmn:timeDuration xsi:type="bpmn:tFormalExpression">{boom}</bpmn:timeDuration>'
            "</bpmn:timerEventDefinition></bpmn:intermediateCatchEvent>"),
            "timeDuration of timerEventDefinition Ted"),
        "multi-instance": (_replace_approve(
            f'<bpmn:userTask id="Approve">{FLOWS}<bpmn:multiInstanceLoopCharacteristics>'
            f'<bpmn:loopCardinality xsi:type="bpmn:tFormalExpression">{boom}</bpmn:loopCardinality>'
            "</bpmn:multiInstanceLoopCharacteristics></bpmn:userTask>"),
            "loopCardinality of userTask Approve"),
        "conditional event": (_replace_approve(
            f'<bpmn:intermediateCatchEvent id="Approve">{FLOWS}<bpmn:conditionalEventDefinition id="Ced">'
            f'<bpmn:condition xsi:type="bpmn:tFormalExpression">{boom}</bpmn:condition>'
            "</bpmn:conditionalEventDefinition></bpmn:intermediateCatchEvent>"),
            "condition of conditionalEventDefinition Ced"),
    }


@pytest.mark.parametrize("kind", list(code_bearing_elements(Path("m"))))
def test_every_other_way_spiff_runs_author_code_is_refused(tmp_path, monkeypatch, marker, kind):
    edit, expected = code_bearing_elements(marker)[kind]
    env, bpmn = hostile_project(tmp_path, monkeypatch, edit)
    assert_refused_at_load(env, bpmn, marker, expected)


# --- one definition per process id ------------------------------------------------------------------

def shadow(processes: Path, name: str, file_name: str) -> Path:
    """A copy of fx_linear whose process id is ``name`` (its scripts would write the counter file)."""
    target = processes / file_name
    target.write_text((FIXTURES / "processes" / "fx_linear.bpmn").read_text().replace("fx_linear", name))
    return target


def test_a_shadowing_export_snapshot_is_an_error_naming_both_files(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, ["fx_linear"])
    evil = shadow(processes, "export_snapshot", "export_snapshot.bpmn")
    env = make_env(tmp_path, monkeypatch, processes)
    svc = env.service()
    with pytest.raises(ProcessRefused) as caught:
        svc.start_process("export_snapshot", {"counter": str(env.counter)})
    assert str(evil) in str(caught.value) and str(SHIPPED / "export_snapshot.bpmn") in str(caught.value)
    assert not env.counter.exists() and svc.list_instances() == []
    listed = [p for p in svc.list_processes() if p["name"] == "export_snapshot"]
    assert len(listed) == 2 and all("defined in 2 files" in p["error"] for p in listed)
    assert svc.start_process("fx_linear", {"counter": str(env.counter)})["state"] == "completed"  # others run


def test_two_files_in_process_folders_defining_one_id_are_an_error(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, ["fx_linear"])
    other = tmp_path / "more"
    other.mkdir()
    copy = shadow(other, "fx_linear", "renamed.bpmn")
    env = make_env(tmp_path, monkeypatch, processes)
    monkeypatch.setenv("PROCOS_PROCESSES", f"{processes}:{other}")
    with pytest.raises(ProcessRefused, match="defined in 2 files") as caught:
        env.service().start_process("fx_linear", {"counter": str(env.counter)})
    assert str(copy) in str(caught.value) and str(processes / "fx_linear.bpmn") in str(caught.value)
    assert not env.counter.exists()


def test_a_file_stem_does_not_name_a_process(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, [])
    shadow(processes, "fx_other", "alias.bpmn")
    env = make_env(tmp_path, monkeypatch, processes)
    with pytest.raises(ProcessNotFound, match="no process named 'alias'"):
        env.service().start_process("alias", {"counter": str(env.counter)})
    assert env.service().start_process("fx_other", {"counter": str(env.counter)})["state"] == "completed"


def test_the_same_folder_twice_is_not_a_duplicate(tmp_path, monkeypatch):
    processes = copy_project(tmp_path, ["fx_linear"])
    link = tmp_path / "link"
    link.symlink_to(processes)
    env = make_env(tmp_path, monkeypatch, processes)
    monkeypatch.setenv("PROCOS_PROCESSES", f"{processes}:{link}:{SHIPPED}")
    assert env.service().start_process("fx_linear", {"counter": str(env.counter)})["state"] == "completed"


# --- the same through the CLI ---------------------------------------------------------------------

def cli(*args):
    from click.testing import CliRunner

    from engine.cli import cli as procos

    return CliRunner().invoke(procos, list(args))


def test_cli_refuses_a_hostile_condition_and_a_shadowing_file(tmp_path, monkeypatch, marker):
    condition = escape(f'__import__("os").system("touch {marker}") == 0')
    env, bpmn = hostile_project(tmp_path, monkeypatch, lambda t: t.replace('environment == "prod"', condition))
    evil = shadow(env.processes, "export_snapshot", "export_snapshot.bpmn")
    done = cli("process", "start", "fx_approval", "--var", f"counter={env.counter}")
    assert done.exit_code == 1 and "Error:" in done.output and str(bpmn) in done.output
    assert "a call is not allowed" in done.output and "Try:" in done.output
    shadowed = cli("process", "start", "export_snapshot", "--var", f"out_dir={tmp_path}")
    assert shadowed.exit_code == 1 and str(evil) in shadowed.output
    assert str(SHIPPED / "export_snapshot.bpmn") in shadowed.output
    listed = json.loads(cli("process", "list", "--json").output)
    errors = {p["file"]: p.get("error", "") for p in listed}
    assert "refused" in errors[str(bpmn)] and "defined in 2 files" in errors[str(evil)]
    assert not marker.exists() and not env.counter.exists()


def test_shipped_processes_load_under_the_sandbox(tmp_path):
    from engine.workflow.loader import Catalog, read_process_file
    from engine.workflow.settings import Settings

    catalog = Catalog(Settings(home=tmp_path, process_dirs=(SHIPPED, FIXTURES / "processes")))
    listed = catalog.listing()
    assert listed and not [p for p in listed if "error" in p]
    for path in [*SHIPPED.glob("*.bpmn"), *(FIXTURES / "processes").glob("*.bpmn")]:
        assert read_process_file(path).processes

