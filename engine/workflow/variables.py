"""Process variables: what a process declares it takes, checked before an instance exists.

A process declares its variables in its BPMN file (``procos process show NAME`` lists them)::

    <bpmn:process id="export_snapshot" ...>
      <bpmn:extensionElements>
        <procos:variables>
          <procos:variable name="source" type="store" required="true" existing="true"
                           description="the store to export" />
          <procos:variable name="compression_level" type="int" default="1" description="..." />
        </procos:variables>
      </bpmn:extensionElements>

Types: ``string``, ``int``, ``float``, ``bool``, ``choice`` (``choices="a,b"``), ``store`` (a store URI;
``existing="true"``: the store must exist), ``s3url`` (``s3://BUCKET/PREFIX``, or empty for none), ``bundle`` (a bundle folder, ``.tar.zst`` or ``.age`` that exists and
is readable, or an ``s3://`` URL), ``source`` (a store URI or a bundle), ``path`` (an existing readable
file or folder), ``folder`` (an output folder; need not exist). Relative paths, and relative ``faiss:`` /
``postgresql+embedded:`` URIs, are made absolute against the starter's working folder, so an approver in
another folder continues the same instance.

:func:`check_variables` returns the values to store (defaults filled in) or raises InvalidVariables
naming every problem: a missing required variable, an unknown one, a value of the wrong type, an
unreadable path. A process that declares nothing is not checked (test fixtures, older files).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import InvalidVariables, ProcosError

from .lint import NS, PROCOS_NS

TYPES = ("string", "int", "float", "bool", "choice", "store", "bundle", "source", "path", "folder", "s3url")
RESERVED = ("environment",)  # set by the deployment, never declared


@dataclass(frozen=True)
class Variable:
    name: str
    type: str = "string"
    required: bool = False
    default: Any = None
    description: str = ""
    choices: tuple[str, ...] = ()
    existing: bool = False

    def to_json(self) -> dict[str, Any]:
        out = {"name": self.name, "type": self.type, "required": self.required, "default": self.default,
               "description": self.description}
        if self.choices:
            out["choices"] = list(self.choices)
        return out


def declared_variables(root: Any, process_id: str) -> list[Variable] | None:
    """The variables ``process_id`` declares in its document, or None when it declares none."""
    import json

    nodes = root.xpath(f"//bpmn:process[@id='{process_id}']/bpmn:extensionElements/procos:variables/procos:variable",
                       namespaces={**NS, "procos": PROCOS_NS})
    if not nodes:
        return None
    found = []
    for node in nodes:
        kind = node.get("type", "string")
        if kind not in TYPES:
            raise ProcosError(f"process {process_id}: variable {node.get('name')!r} has unknown type {kind!r}",
                              hint=f"types: {', '.join(TYPES)}")
        raw = node.get("default")
        default = None
        if raw is not None:
            try:
                default = json.loads(raw)
            except ValueError:
                default = raw
        found.append(Variable(name=node.get("name"), type=kind, required=node.get("required") == "true",
                              default=default, description=node.get("description", ""),
                              choices=tuple(c for c in (node.get("choices") or "").split(",") if c),
                              existing=node.get("existing") == "true"))
    return found


def check_variables(declared: list[Variable] | None, given: dict[str, Any], cwd: Path, *,
                    partial: bool = False) -> dict[str, Any]:
    """``given`` checked and normalized against ``declared`` (defaults added unless ``partial``)."""
    if declared is None:
        return dict(given)
    by_name = {v.name: v for v in declared}
    problems: list[str] = []
    out: dict[str, Any] = {}
    for name, value in given.items():
        if name in RESERVED:
            out[name] = value
            continue
        var = by_name.get(name)
        if var is None:
            problems.append(f"unknown variable {name!r}")
            continue
        try:
            out[name] = normalize(var, value, cwd)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
    if not partial:
        for var in declared:
            if var.name in out or var.name in given:
                continue
            if var.required:
                problems.append(f"missing required variable {var.name!r} ({var.description or var.type})")
            elif var.default is not None:
                out[var.name] = var.default
    if problems:
        known = ", ".join(f"{v.name}{'' if v.required else '?'}" for v in declared)
        raise InvalidVariables("; ".join(problems) + "; nothing was started",
                               hint=f"the variables are: {known} (procos process show NAME lists them)")
    return out


def normalize(var: Variable, value: Any, cwd: Path) -> Any:
    """The value to store for ``var``; raises ValueError saying what is wrong."""
    kind = var.type
    if kind == "string":
        if not isinstance(value, str):
            raise ValueError(f"expected text, got {_show(value)}")
        return value
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).lstrip("-").isdigit():
            raise ValueError(f"expected a whole number, got {_show(value)}")
        return int(value)
    if kind == "float":
        try:
            if isinstance(value, bool):
                raise TypeError
            return float(value)
        except (TypeError, ValueError):
            raise ValueError(f"expected a number, got {_show(value)}") from None
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ValueError(f"expected true or false, got {_show(value)}")
    if kind == "choice":
        if value not in var.choices:
            raise ValueError(f"expected one of {', '.join(var.choices)}, got {_show(value)}")
        return value
    if kind == "s3url":
        if value == "" or (isinstance(value, str) and value.startswith("s3://") and len(value) > 5):
            return value
        raise ValueError(f"expected an S3 location s3://BUCKET/PREFIX, got {_show(value)}")
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"expected a {kind}, got {_show(value)}")
    if kind == "folder":
        return str(_absolute(value, cwd))
    if kind == "path":
        return str(_readable(value, cwd))
    if kind == "bundle":
        return value if value.startswith("s3://") else str(_readable(value, cwd))
    if kind == "source" and not value.startswith("s3://") and ":" not in value.split("/", 1)[0]:
        return str(_readable(value, cwd))  # a bundle path (store URIs start with a scheme)
    if kind == "source" and value.startswith("s3://"):
        return value
    return absolute_store_uri(value, cwd, existing=var.existing)


def absolute_store_uri(uri: str, cwd: Path, *, existing: bool = False) -> str:
    """``uri`` with a relative ``faiss:``/``postgresql+embedded:`` path made absolute against ``cwd``."""
    from engine.errors import InvalidURI
    from engine.repository import parse_uri

    scheme, _, rest = uri.partition(":")
    try:
        parse_uri(uri)  # refuses an unknown scheme or option, naming it
    except InvalidURI as exc:
        raise ValueError(exc.message) from None
    if scheme.lower() not in ("faiss", "postgresql+embedded"):
        return uri
    path, sep, query = rest.partition("?")
    path = path[2:] if path.startswith("//") else path
    full = _absolute(path, cwd)
    if existing and not full.exists():
        raise ValueError(f"no store at {full}")
    return f"{scheme}:{full}{sep}{query}"


def _absolute(value: str, cwd: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else (cwd / p).resolve()


def _readable(value: str, cwd: Path) -> Path:
    p = _absolute(value, cwd)
    if not p.exists():
        raise ValueError(f"{p} does not exist")
    if not os.access(p, os.R_OK):
        raise ValueError(f"{p} cannot be read")
    return p


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def retry_variables(declared: list[dict] | None, current: dict[str, Any], variables: dict[str, Any],
                    cwd: str | Path | None) -> tuple[dict[str, Any], dict[str, str]]:
    """The variables a retry changes, checked like at start (``declared``: as the ``started`` entry recorded
    them), redacted for storing, and the passwords they carry for this run only."""
    from engine.secrets import redact_value, secret_strings

    from .context import non_json_paths

    if not variables:
        return {}, {}
    bad = non_json_paths(variables, "variables")
    if bad:
        raise InvalidVariables(f"process variables must be JSON values: {', '.join(bad)}")
    if "environment" in variables and variables["environment"] != current.get("environment"):
        raise InvalidVariables("the environment of an instance cannot be changed",
                               hint="start a new instance in the other deployment")
    decls = [Variable(**{**d, "choices": tuple(d.get("choices") or ())}) for d in declared] \
        if declared is not None else None
    checked = check_variables(decls, variables, Path(cwd or Path.cwd()), partial=True)
    return redact_value(checked), secret_strings(checked)
