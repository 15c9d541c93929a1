"""The restricted condition language: what evaluates, what is refused, and that nothing is ever called."""

from __future__ import annotations

import ast
import gc
import sys
import warnings
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from engine.errors import ExpressionRefused, ProcosError, WorkflowError
from engine.workflow import conditions

DATA = {"environment": "prod", "approved": True, "passed": True, "drift": False, "count": 3, "ratio": 0.5,
        "limits": {"max": 10, "tiers": [1, 2]}, "ids": ["a", "b"], "nothing": None}


@pytest.mark.parametrize(("text", "expected"), [
    ('environment == "prod"', True), ("approved == True", True), ("passed == True and drift == False", True),
    ("count > 0", True), ("count > 5", False), ('environment != "dev" and not drift', True),
    ("drift or count", 3), ("drift and count", False), ("1 < count <= 3", True), ("count in [1, 2, 3]", True),
    ('"x" not in ids', True), ("nothing is None", True), ("approved is not False", True),
    ('limits["max"] - count * 2 >= 4', True), ("limits['tiers'][-1]", 2), ("ids[0] + ids[1]", "ab"),
    ("count / 2", 1.5), ("count // 2", 1), ("count % 2", 1), ("-count + +1", -2), ("ratio * 4 == 2", True),
    ("{'a': 1, 'b': [1, -2]}", {"a": 1, "b": [1, -2]}), ("(1, 2.5, None)", (1, 2.5, None)), ("{1, 2}", {1, 2}),
    ('"PT1H"', "PT1H"), ("  count == 3\n", True),
])
def test_ordinary_expressions_evaluate_like_python(text, expected):
    assert conditions.evaluate(text, DATA) == expected


@pytest.mark.parametrize(("text", "construct"), [
    ('__import__("os").system("true")', "a call"), ("environment.upper()", "a call"),
    ("environment.__class__", "attribute access"), ("(lambda: 1)", "a lambda"),
    ("[x for x in ids]", "a comprehension"), ("{x: 1 for x in ids}", "a comprehension"),
    ("any(x for x in ids)", "a call"), ('f"{count}"', "an f-string"), ("(y := 1)", "assignment expression"),
    ("[*ids]", "a starred expression inside"), ("count ** 2", "the Pow operator"), ("count << 1", "LShift"),
    ("~count", "the Invert operator"), ("count if approved else 0", "conditional expression"),
    ('limits["__class__"]', "dunder key"), ("__builtins__", "dunder name"), ("__import__", "dunder name"),
    ("ids[0:1]", "a subscript whose key"), ("limits[count]", "a subscript whose key"), ("b'x'", "bytes literal"),
    ("1j", "complex literal"), ("...", "ellipsis literal"), ("[count]", "a non-literal inside"),
    ("{**limits}", "** unpacking"), ("count @ count", "MatMult"),
])
def test_constructs_outside_the_language_are_refused_by_check_and_evaluate(text, construct):
    with pytest.raises(ExpressionRefused, match="is not allowed") as checked:
        conditions.check(text, where="sequenceFlow F")
    assert construct in str(checked.value) and str(checked.value).startswith("sequenceFlow F: ")
    with pytest.raises(ExpressionRefused):
        conditions.evaluate(text, DATA)


@pytest.mark.parametrize("text", ["${approved}", "=approved", "approved ==", "", "a = 1", "count == 1; 2", "\x00"])
def test_text_that_is_not_an_expression_is_refused(text):
    with pytest.raises(ExpressionRefused, match="not a Python expression"):
        conditions.check(text)


def test_size_and_depth_are_bounded():
    with pytest.raises(ExpressionRefused, match="longer than"):
        conditions.check("count + " * 400 + "1")
    with pytest.raises(ExpressionRefused, match="nesting deeper"):
        conditions.check(" + ".join(["count"] * 60))
    with pytest.raises(ExpressionRefused):
        conditions.check("-" * 1500 + "1")


@pytest.mark.parametrize(("text", "problem"), [
    ('enviroment == "prod"', "unknown variable 'enviroment'"), ('count < "x"', "TypeError"),
    ("count / 0", "ZeroDivisionError"), ('"x" * 3', "Mult of str and int"), ('"%s" % count', "Mod of str"),
    ('limits["min"]', "no item 'min'"), ("ids[5]", "no item 5"), ("count[0]", "cannot take item"),
    ("-environment", "needs a number"), ("{[1, 2]}", "TypeError"),
])
def test_run_time_problems_are_clear_workflow_errors(text, problem):
    with pytest.raises(WorkflowError, match="expression") as caught:
        conditions.evaluate(text, DATA, where="task 'Env'")
    assert problem in str(caught.value) and str(caught.value).startswith("task 'Env': ")


class Canary:
    """A value that records every dunder the evaluator might touch (it must touch none)."""

    touched: list[str] = []

    def __getattribute__(self, name):
        Canary.touched.append(name)
        return object.__getattribute__(self, name)

    def _note(name):  # noqa: N805 - a helper that builds methods
        def method(self, *args):
            Canary.touched.append(name)
            return True
        return method

    for _name in ("__eq__", "__ne__", "__lt__", "__le__", "__gt__", "__ge__", "__bool__", "__contains__",
                  "__getitem__", "__add__", "__radd__", "__sub__", "__mul__", "__neg__", "__call__",
                  "__iter__", "__len__", "__str__", "__repr__", "__format__", "__index__", "__mod__",
                  "__truediv__", "__floordiv__", "__hash__"):
        locals()[_name] = _note(_name)
    del _name


def test_a_variable_holding_something_other_than_json_is_refused_untouched():
    Canary.touched.clear()
    for text in ("canary", "canary == 1", "1 in canary", "canary[0]", "not canary", "-canary"):
        with pytest.raises(ExpressionRefused, match="not a JSON value"):
            conditions.evaluate(text, {"canary": Canary()})
        with pytest.raises(ExpressionRefused, match="not a JSON value"):
            conditions.evaluate(text.replace("canary", "box"), {"box": [1, {"x": Canary()}]})
    assert Canary.touched == []


NAMES = st.sampled_from(["environment", "count", "limits", "ids", "nothing", "canary", "canary", "missing",
                         "__import__", "open"])
LITERALS = st.sampled_from(['"prod"', "'__class__'", "None", "True", "1.5", "0", "-2", "[1, 2]", "{'max': 1}",
                            "()", "{1}", "b'x'", "..."])
BINARY = st.sampled_from(["==", "!=", "<", ">=", "in", "not in", "is", "is not", "and", "or", "+", "-", "*", "/",
                          "//", "%", "**", "@", "<<", "&", "|", "^"])
KEYS = st.sampled_from(['"max"', "0", "-1", '"__class__"', "1:2", "count", "'__globals__'"])


def _grow(children):
    binary = st.tuples(children, BINARY, children).map(lambda t: f"({t[0]} {t[1]} {t[2]})")
    return st.one_of(
        binary, binary, binary, binary,  # mostly inside the language, so evaluation gets exercised
        st.tuples(st.sampled_from(["not ", "-", "+", "~"]), children).map("".join),
        st.tuples(children, KEYS).map(lambda t: f"{t[0]}[{t[1]}]"),
        st.tuples(children, st.sampled_from(["__class__", "upper", "__subclasses__", "system"]))
        .map(lambda t: f"{t[0]}.{t[1]}"),
        children.map(lambda c: f"{c}()"), children.map(lambda c: f"open({c})"),
        children.map(lambda c: f"(lambda: {c})"), children.map(lambda c: f"[x for x in {c}]"),
        children.map(lambda c: f"(y := {c})"), children.map(lambda c: f"f'{{{c}}}'"),
        st.tuples(children, children).map(lambda t: f"({t[0]} if {t[1]} else 0)"),
        st.lists(children, max_size=3).map(lambda cs: f"[{', '.join(cs)}]"),
    )


EXPRESSIONS = st.recursive(st.one_of(NAMES, LITERALS), _grow, max_leaves=8)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(EXPRESSIONS | st.text(max_size=40))
@example("canary == 1")
@example("(canary + 1) in ids")
def test_random_text_is_refused_cleanly_or_evaluated_without_calling_anything(text):
    """Either a ProcosError or a JSON value, and no Python function outside the evaluator ever runs."""
    allowed = {conditions.__file__, ast.__file__, warnings.__file__, sys.modules["engine.errors"].__file__}
    calls: list[str] = []

    def profile(frame, event, arg):
        if event == "call" and frame.f_code.co_filename not in allowed:
            calls.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}")
        elif event == "c_call" and getattr(arg, "__name__", "") in ("eval", "exec", "__import__", "open",
                                                                   "getattr", "setattr", "system"):
            calls.append(arg.__name__)

    Canary.touched.clear()
    data = {**DATA, "canary": Canary()}
    gc.disable()  # a collector callback (hypothesis has one) is not the evaluator's doing
    sys.setprofile(profile)
    try:
        result = conditions.evaluate(text, data)
    except ProcosError:
        result = None
    finally:
        sys.setprofile(None)
        gc.enable()
    assert calls == [] and Canary.touched == []
    assert conditions._json_value(result)


def test_the_evaluator_never_uses_eval_or_exec():
    source = Path(conditions.__file__).read_text()
    assert "eval(" not in source.replace("def evaluate(", "").replace("conditions.evaluate(", "")
    assert "exec(" not in source and "compile(" not in source
