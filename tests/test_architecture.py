"""Imports go one way: records/errors <- repository <- snapshot <- api <- workflow <- api.processes <- cli/ui.

A module may import from its own layer and the layers below it, never above. The only upward
reference allowed is the repository's ``export_snapshot``/``import_snapshot`` methods delegating to
``engine.snapshot`` (inside the method body), as the protocol promises.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "engine"

LAYERS = {
    "engine.errors": 0, "engine.records": 0, "engine.config": 0, "engine.secrets": 0, "engine.files": 0, "engine.progress": 0,
    "engine.owner": 0, "engine.streams": 0,
    "engine.repository": 1, "engine.synthetic": 1, "engine.events": 1, "engine.crypto": 1,
    "engine.snapshot": 2, "engine.validation": 2, "engine.drift": 2, "engine.transport": 2,
    "engine.api": 3,
    "engine.workflow": 4,
    "engine.api.processes": 4.5,  # the front door for processes, tasks and users: above the engine it drives
    "engine.api.activity": 4.5,  # summaries over instances and events (the panel's dashboards)
    "engine.cli": 5, "engine.ui": 5,
}
DELEGATING_METHODS = {"export_snapshot", "import_snapshot"}


def layer_of(module: str) -> int | None:
    best = None
    for prefix, layer in LAYERS.items():
        if module == prefix or module.startswith(prefix + "."):
            if best is None or len(prefix) > len(best[0]):
                best = (prefix, layer)
    return None if best is None else best[1]


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(tree: ast.AST, current: str, is_package: bool):
    """Yield (imported module, enclosing function name or None) for every import in the tree."""

    def visit(node: ast.AST, func: str | None):
        for child in ast.iter_child_nodes(node):
            name = func
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = child.name
            if isinstance(child, ast.Import):
                for alias in child.names:
                    yield alias.name, name
            elif isinstance(child, ast.ImportFrom):
                if child.level:
                    base = current.split(".")
                    base = base if is_package else base[:-1]
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                yield target, name
            yield from visit(child, name)

    yield from visit(tree, None)


def test_engine_imports_only_flow_downwards():
    problems = []
    for path in sorted(ROOT.rglob("*.py")):
        current = module_name(path)
        mine = layer_of(current)
        if mine is None:
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        for target, func in imported_modules(tree, current, path.name == "__init__.py"):
            theirs = layer_of(target)
            if theirs is None or theirs <= mine:
                continue
            if (current.startswith("engine.repository") and target.startswith("engine.snapshot")
                    and func in DELEGATING_METHODS):
                continue
            problems.append(f"{current} imports {target} (layer {theirs} > {mine})")
    assert not problems, "\n".join(problems)


def test_every_engine_module_belongs_to_a_layer():
    orphans = [module_name(p) for p in ROOT.rglob("*.py")
               if module_name(p) != "engine" and layer_of(module_name(p)) is None]
    assert not orphans, f"modules outside the layer map: {orphans}"


FRONT_DOOR = ("engine.api", "engine.errors")  # what the CLI and the panel may import from the engine


def test_the_cli_and_the_panel_reach_the_engine_only_through_engine_api():
    """One front door: the CLI and the panel call engine.api (and raise/catch engine.errors), nothing else."""
    problems = []
    for package in ("cli", "ui"):
        for path in sorted((ROOT / package).rglob("*.py")) if (ROOT / package).is_dir() else []:
            current = module_name(path)
            tree = ast.parse(path.read_text(), filename=str(path))
            for target, _ in imported_modules(tree, current, path.name == "__init__.py"):
                if target.startswith("engine") and not target.startswith((f"engine.{package}", *FRONT_DOOR)) \
                        and target != "engine":
                    problems.append(f"{current} imports {target}")
    assert not problems, "\n".join(problems)
