"""The condition language: expressions over an instance's data, evaluated by walking the AST (never ``eval``).

Every expression SpiffWorkflow evaluates (gateway conditions, timer, loop and conditional-event
expressions) goes through :func:`evaluate`; :func:`check` runs the same checks when a file is loaded.

Allowed: literals (str, int, float, bool, None; list/tuple/set/dict displays of literals), names of data
variables (not dunder names), comparisons (``== != < <= > >= in, not in, is, is not``), ``and``/``or``/
``not``, unary ``-``/``+``, arithmetic ``+ - * / // %`` (``*``, ``/``, ``//``, ``%`` on numbers only), and
subscripts with a literal key (``limits["max"]``, ``ids[0]``) that is not a dunder string. Anything else
(calls, attribute access, lambdas, comprehensions, f-strings, ``:=``, starred, ``**``, ``x if c else y``)
is refused with :class:`ExpressionRefused`, and nothing of the expression runs. Names resolve only to
JSON values (str, int, float, bool, None, lists, tuples, dicts, sets); anything else is refused too.

Examples: ``environment == "prod"``, ``approved == True``, ``passed == True and drift == False``,
``count > 0``, ``tier in [1, 2]``, ``limits["max"] - used >= 10``.
"""

from __future__ import annotations

import ast
import operator
import warnings
from typing import Any

from engine.errors import ExpressionRefused, WorkflowError

MAX_LENGTH = 2000  # characters of one expression
MAX_DEPTH = 40  # nesting depth of its syntax tree

ALLOWED = ("literals, data variable names, comparisons (== != < <= > >= in, not in, is, is not), "
           "and/or/not, + - * / // % and subscripts with a literal key")

_COMPARE = {
    ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
    ast.Gt: operator.gt, ast.GtE: operator.ge, ast.Is: operator.is_, ast.IsNot: operator.is_not,
    ast.In: lambda a, b: a in b, ast.NotIn: lambda a, b: a not in b,
}
_ARITHMETIC = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod,
}
_REFUSED_NAMES = {
    ast.Call: "a call", ast.Attribute: "attribute access", ast.Lambda: "a lambda",
    ast.ListComp: "a comprehension", ast.SetComp: "a comprehension", ast.DictComp: "a comprehension",
    ast.GeneratorExp: "a comprehension", ast.JoinedStr: "an f-string", ast.FormattedValue: "an f-string",
    ast.NamedExpr: "an assignment expression (:=)", ast.Starred: "a starred expression",
    ast.IfExp: "a conditional expression (x if c else y)", ast.Slice: "a slice", ast.Await: "await",
    ast.Yield: "yield", ast.YieldFrom: "yield",
}
_SCALARS = (str, int, float, bool, type(None))
_CONTAINERS = (list, tuple, dict, set, frozenset)


def check(text: str | None, where: str = "") -> ast.Expression:
    """Parse ``text`` and check it is inside the language; return its tree, raise ExpressionRefused."""
    prefix = f"{where}: " if where else ""
    source = (text or "").strip()
    if len(source) > MAX_LENGTH:
        raise ExpressionRefused(f"{prefix}expression of {len(source)} characters is longer than {MAX_LENGTH}",
                                hint="keep conditions short; compute values in a script task")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)  # e.g. "1if": the refusal below says enough
            tree = ast.parse(source, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise ExpressionRefused(f"{prefix}expression {source!r} is not a Python expression "
                                f"({type(exc).__name__})", hint="write e.g. approved == True") from exc
    _check(tree.body, source, prefix, 0)
    return tree


def evaluate(text: str | None, data: dict, where: str = "") -> Any:
    """Check ``text`` again, then evaluate it over ``data``; an unknown name is a WorkflowError."""
    tree = check(text, where)
    prefix = f"{where}: " if where else ""
    return _Evaluator((text or "").strip(), prefix, data).value(tree.body)


def _refuse(node: ast.AST, source: str, prefix: str, what: str | None = None) -> ExpressionRefused:
    what = what or _REFUSED_NAMES.get(type(node)) or f"{type(node).__name__}"
    return ExpressionRefused(f"{prefix}expression {source!r}: {what} is not allowed (allowed: {ALLOWED})",
                             hint="compute anything more complex in a pinned script task")


def _is_dunder(name: str) -> bool:
    return name.startswith("__")


def _check(node: ast.AST, source: str, prefix: str, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise _refuse(node, source, prefix, f"nesting deeper than {MAX_DEPTH}")
    deeper = depth + 1
    if isinstance(node, ast.Constant):
        if type(node.value) not in _SCALARS:
            raise _refuse(node, source, prefix, f"a {type(node.value).__name__} literal")
    elif isinstance(node, ast.Name):
        if _is_dunder(node.id):
            raise _refuse(node, source, prefix, f"the dunder name {node.id}")
    elif isinstance(node, ast.List | ast.Tuple | ast.Set):
        for element in node.elts:
            _check_literal(element, source, prefix, deeper)
    elif isinstance(node, ast.Dict):
        for key, value in zip(node.keys, node.values, strict=True):
            if not isinstance(key, ast.Constant):
                raise _refuse(node, source, prefix, "a dict key that is not a literal (or ** unpacking)")
            _check(key, source, prefix, deeper)
            _check_literal(value, source, prefix, deeper)
    elif isinstance(node, ast.Compare):
        for op in node.ops:
            if type(op) not in _COMPARE:
                raise _refuse(node, source, prefix, f"the {type(op).__name__} comparison")
        for child in (node.left, *node.comparators):
            _check(child, source, prefix, deeper)
    elif isinstance(node, ast.BoolOp):
        for child in node.values:
            _check(child, source, prefix, deeper)
    elif isinstance(node, ast.UnaryOp):
        if not isinstance(node.op, ast.Not | ast.USub | ast.UAdd):
            raise _refuse(node, source, prefix, f"the {type(node.op).__name__} operator")
        _check(node.operand, source, prefix, deeper)
    elif isinstance(node, ast.BinOp):
        if type(node.op) not in _ARITHMETIC:
            raise _refuse(node, source, prefix, f"the {type(node.op).__name__} operator")
        _check(node.left, source, prefix, deeper)
        _check(node.right, source, prefix, deeper)
    elif isinstance(node, ast.Subscript):
        _check(node.value, source, prefix, deeper)
        key = node.slice
        if isinstance(key, ast.UnaryOp) and isinstance(key.op, ast.USub):
            key = key.operand
        if not isinstance(key, ast.Constant) or type(key.value) not in (str, int):
            raise _refuse(node, source, prefix, "a subscript whose key is not a str or int literal")
        if isinstance(key.value, str) and _is_dunder(key.value):
            raise _refuse(node, source, prefix, f"the dunder key {key.value!r}")
    else:
        raise _refuse(node, source, prefix)


def _check_literal(node: ast.AST, source: str, prefix: str, depth: int) -> None:
    """Elements of displays: constants, signed numbers, and nested displays of those."""
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd) \
            and isinstance(node.operand, ast.Constant) and type(node.operand.value) in (int, float):
        return
    if not isinstance(node, ast.Constant | ast.List | ast.Tuple | ast.Set | ast.Dict):
        raise _refuse(node, source, prefix, f"{_REFUSED_NAMES.get(type(node), 'a non-literal')} inside a "
                                            "list, tuple, set or dict display")
    _check(node, source, prefix, depth)


def _json_value(value: Any, depth: int = 0) -> bool:
    """Is ``value`` built of JSON types only? (``type()`` checks: nothing of the value's class runs.)"""
    kind = type(value)
    if kind in _SCALARS:
        return True
    if kind in _CONTAINERS and depth < MAX_DEPTH:
        items = [*value.keys(), *value.values()] if kind is dict else value
        return all(_json_value(v, depth + 1) for v in items)
    return False


def _number(value: Any) -> bool:
    return type(value) in (int, float, bool)


class _Evaluator:
    """Evaluates a checked tree; every operation is on JSON values only, so no user code can run."""

    def __init__(self, source: str, prefix: str, data: dict) -> None:
        self.source, self.prefix, self.data = source, prefix, data

    def fail(self, problem: str) -> WorkflowError:
        return WorkflowError(f"{self.prefix}expression {self.source!r}: {problem}",
                             hint="check the instance's data (procos instance show ID)")

    def value(self, node: ast.AST) -> Any:
        return _METHODS[type(node)](self, node)

    def _Constant(self, node: ast.Constant) -> Any:  # noqa: N802 - named after the AST class
        return node.value

    def _Name(self, node: ast.Name) -> Any:  # noqa: N802
        if node.id not in self.data:
            known = ", ".join(sorted(k for k in self.data if type(k) is str)[:20]) or "nothing"
            raise self.fail(f"unknown variable {node.id!r} (the data holds: {known})")
        found = self.data[node.id]
        if not _json_value(found):
            raise ExpressionRefused(f"{self.prefix}expression {self.source!r}: variable {node.id!r} holds a "
                                    f"{type(found).__name__}, not a JSON value")
        return found

    def _List(self, node: ast.List) -> list:  # noqa: N802
        return [self.value(e) for e in node.elts]

    def _Tuple(self, node: ast.Tuple) -> tuple:  # noqa: N802
        return tuple(self.value(e) for e in node.elts)

    def _Set(self, node: ast.Set) -> set:  # noqa: N802
        return self._apply(lambda: {self.value(e) for e in node.elts})

    def _Dict(self, node: ast.Dict) -> dict:  # noqa: N802
        return self._apply(lambda: {self.value(k): self.value(v) for k, v in zip(node.keys, node.values,
                                                                                 strict=True)})

    def _Compare(self, node: ast.Compare) -> bool:  # noqa: N802
        left = self.value(node.left)
        for op, right_node in zip(node.ops, node.comparators, strict=True):
            right = self.value(right_node)
            if not self._apply(lambda op=op, left=left, right=right: _COMPARE[type(op)](left, right)):
                return False
            left = right
        return True

    def _BoolOp(self, node: ast.BoolOp) -> Any:  # noqa: N802
        result = None
        for child in node.values:
            result = self.value(child)
            if isinstance(node.op, ast.And) != bool(result):
                return result  # `and` stops at the first falsy value, `or` at the first truthy one
        return result

    def _UnaryOp(self, node: ast.UnaryOp) -> Any:  # noqa: N802
        operand = self.value(node.operand)
        if isinstance(node.op, ast.Not):
            return not operand
        if not _number(operand):
            raise self.fail(f"unary {'-' if isinstance(node.op, ast.USub) else '+'} needs a number, "
                            f"not {type(operand).__name__}")
        return -operand if isinstance(node.op, ast.USub) else +operand

    def _BinOp(self, node: ast.BinOp) -> Any:  # noqa: N802
        left, right = self.value(node.left), self.value(node.right)
        same_sequences = isinstance(node.op, ast.Add) and type(left) is type(right) and type(left) in (
            str, list, tuple)
        if not (_number(left) and _number(right)) and not same_sequences:
            raise self.fail(f"{type(node.op).__name__} of {type(left).__name__} and {type(right).__name__} "
                            "(arithmetic works on numbers; + also joins two str, lists or tuples)")
        return self._apply(lambda: _ARITHMETIC[type(node.op)](left, right))

    def _Subscript(self, node: ast.Subscript) -> Any:  # noqa: N802
        container = self.value(node.value)
        key = self.value(node.slice)
        if type(container) is dict or (type(container) in (list, tuple, str) and type(key) is int):
            try:
                return container[key]
            except (KeyError, IndexError):
                raise self.fail(f"no item {key!r}") from None
        raise self.fail(f"cannot take item {key!r} of a {type(container).__name__}")

    def _apply(self, fn: Any) -> Any:
        try:
            return fn()
        except (TypeError, ZeroDivisionError, OverflowError, ValueError) as exc:
            raise self.fail(f"{type(exc).__name__}: {exc}") from None


# checked node type -> its _Evaluator method (a table, not getattr: the evaluator looks nothing up by name)
_METHODS = {getattr(ast, name[1:]): method for name, method in vars(_Evaluator).items()
            if name.startswith("_") and name[1:2].isupper()}
