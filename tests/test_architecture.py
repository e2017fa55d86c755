"""The layering of the package, checked on its import statements (see README, Architecture):
no import cycle, no private name across modules, no module that only re-exports another's
names, each layer importing only the layers below it, and no code above the families that
looks at a model's name."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tractable"

# what each layer may import (besides itself and the base modules that every layer may use)
BASE = {"protocol", "checks", "conftest"}
LAYERS = {
    "distributions": set(),
    "estimators": set(),
    "metrics": set(),
    "nn": set(),
    "data": {"metrics", "transforms", "distributions"},
    "transforms": {"nn", "distributions"},
    "flows": {"transforms", "distributions", "nn", "estimators"},
    "continuous": {"flows", "transforms", "distributions", "nn", "estimators"},
    "vae": {"flows", "transforms", "distributions", "nn", "estimators"},
    "gan": {"nn", "estimators"},
    "flow_matching": {"flows", "continuous", "transforms", "distributions", "nn", "estimators"},
    "diffusion": {"continuous", "nn", "estimators"},
    # beside the families, fitting flows with train's optimiser and schedule; its 'fit'
    # command builds flows by name (registry) and draws the fit (plots)
    "variational": {"flows", "transforms", "distributions", "nn", "estimators", "metrics",
                    "train", "registry", "plots"},  # fmt: skip
    "train": set(),
    "plots": set(),
    "registry": set(),  # the families are named as strings and imported on first use
    "evaluation": {"data", "metrics", "nn", "train", "plots"},
    "runs": {"registry", "data", "train", "evaluation", "plots", "metrics"},
    "humaneval": {"runs"},
    "report": {"runs", "registry", "data", "plots", "train"},
    "cli": {"runs", "report", "evaluation", "registry", "data", "train", "humaneval",
            "variational"},  # fmt: skip
}


def _modules() -> dict[str, Path]:
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[str, str]]:
    r"""``(target module, imported name)`` for every ``tractable`` import outside
    ``TYPE_CHECKING`` blocks, with targets relative to the package (``""`` is the root)."""
    tree = ast.parse(path.read_text())
    skip = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and getattr(node.test, "id", "") == "TYPE_CHECKING":
            skip.update(id(n) for n in ast.walk(node))
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    package = [p for p in package if p]
    found = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom) or not node.level:
            continue
        base = package[: len(package) - (node.level - 1)]
        target = ".".join(base + ([node.module] if node.module else []))
        found += [(target, a.name) for a in node.names]
    return found


MODULES = _modules()


def _top(module: str) -> str:
    return module.split(".")[0] if module else ""


def test_no_private_name_or_module_crosses_a_module_boundary() -> None:
    bad = []
    for name, path in MODULES.items():
        for target, imported in _imports(name, path):
            if imported.startswith("_") or any(p.startswith("_") for p in target.split(".")):
                bad.append(f"{name}: from {target} import {imported}")
    assert not bad, bad


def test_no_module_only_re_exports_another() -> None:
    bad = []
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            continue  # a package's public face
        body = [
            n
            for n in ast.parse(path.read_text()).body
            if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))
        ]
        if body and all(
            isinstance(n, ast.Import | ast.ImportFrom)
            or (isinstance(n, ast.Assign) and getattr(n.targets[0], "id", "") == "__all__")
            for n in body
        ):
            bad.append(name)
    assert not bad, bad


def test_no_import_cycle_between_modules() -> None:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        if path.name == "__init__.py":
            continue
        deps = set()
        for target, imported in _imports(name, path):
            full = f"{target}.{imported}" if target else imported
            module = full if full in MODULES else target
            if module in MODULES and MODULES[module].name != "__init__.py" and module != name:
                deps.add(module)
        edges[name] = deps
    state: dict[str, int] = {}
    cycles = []

    def visit(u: str, stack: list[str]) -> None:
        state[u] = 1
        for v in edges.get(u, ()):
            if state.get(v) == 1:
                cycles.append(stack[stack.index(v) :] + [v])
            elif v in edges and not state.get(v):
                visit(v, stack + [v])
        state[u] = 2

    for u in edges:
        if not state.get(u):
            visit(u, [u])
    assert not cycles, cycles


@pytest.mark.parametrize("layer", sorted(LAYERS))
def test_each_layer_imports_only_the_layers_below(layer: str) -> None:
    allowed = LAYERS[layer] | BASE | {layer, ""}
    bad = []
    for name, path in MODULES.items():
        if _top(name) != layer:
            continue
        for target, imported in _imports(name, path):
            top = _top(target) or imported
            if target == "" and imported in ("__version__",):
                continue
            if top not in allowed:
                bad.append(f"{name}: from {target or '.'} import {imported}")
    assert not bad, bad


def test_every_module_is_in_a_layer() -> None:
    tops = {_top(n) for n in MODULES} - {""}
    assert tops <= set(LAYERS) | BASE | {"__main__"}, tops - set(LAYERS) - BASE


def test_nothing_above_the_families_looks_at_a_model_name() -> None:
    from tractable.registry import MODELS

    above = {"train", "plots", "evaluation", "runs", "report", "cli"}
    bad = []
    for name, path in MODULES.items():
        if _top(name) not in above:
            continue
        tree = ast.parse(path.read_text())
        defaults = set()  # DEFAULT_MODEL = "maf" names a default, it does not branch on it
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == (
                "DEFAULT_MODEL"
            ):
                defaults.add(id(node.value))
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and node.value in MODELS and id(node) not in defaults:
                bad.append(f"{name}: {node.value!r} (line {node.lineno})")
    assert not bad, bad
