"""The packages' import design (docs: README "Map"): the services share only `service.common`; the tools are
peers; the CLI package sits on top and only assembles. No module imports one that imports it back.

    eibert/                    the CLI: assembles every part's commands (and `eibert bench`'s sections)
    simulators/   loadtests/   peer tools: never each other, never training code or the cloud's internals
    model_store/               the pipeline: may run bundles through the edge runtime, measure with the dev stack
    service/devstack           starts the services by their own entry points, talks HTTP: service.common only
    service/edge  service/cloud   never each other
    service/common             imports nothing of the project above it
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOPS = ("service", "model_store", "simulators", "loadtests", "eibert")
SOURCES = sorted(p for top in TOPS for p in (ROOT / top).rglob("*.py"))

# What each layer may import of the project (a name allows itself and its submodules). Layers are matched
# longest prefix first, so `service.devstack` is not `service`.
TOOL_DATA = ("model_store.data", "model_store.shipped")  # data loaders and bundle paths: no training code
ALLOWED: dict[str, tuple[str, ...]] = {
    "service.common": ("service.common",),
    "service.edge": ("service.common", "service.edge"),
    "service.cloud": ("service.common", "service.cloud"),
    "service.devstack": ("service.common", "service.devstack"),
    "service": ("service",),  # service/__init__.py
    "model_store": ("service.common", "service.edge", "service.devstack", "model_store"),
    "simulators": ("service.common", "service.edge", "service.devstack", *TOOL_DATA, "simulators"),
    "loadtests": ("service.common", "service.edge", "service.devstack", *TOOL_DATA, "loadtests"),
    "eibert": TOPS,
}
HEAVY = {"torch", "transformers"}  # the edge never needs them; neither do the tools


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in SOURCES}


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def layer_of(module: str) -> str:
    return max((layer for layer in ALLOWED if _within(module, layer)), key=len)


def _resolve(name: str) -> str:
    """`name` as the project module it denotes: the longest importable prefix (`a.b.Class` -> `a.b`)."""
    while name and name not in MODULES and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def imports(path: Path) -> set[str]:
    """Every module `path` imports, at any depth (inside functions and `if TYPE_CHECKING:` too): a lazy import
    is still a dependency. `from pkg import name` counts `pkg.name` when that is a module, else `pkg`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(_resolve(a.name) for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                names.add(_resolve(f"{node.module}.{alias.name}"))
    return names


def forbidden(module: str, imported: Iterable[str]) -> set[str]:
    """The project modules among `imported` that `module`'s layer may not import, and the heavy libraries."""
    allowed = ALLOWED[layer_of(module)]
    bad = {n for n in imported if n.split(".")[0] in TOPS and not any(_within(n, a) for a in allowed)}
    if not _within(module, "model_store") and not _within(module, "eibert"):
        bad |= {n for n in imported if n.split(".")[0] in HEAVY}
    return bad


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing itself): Tarjan."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in graph.get(v, ()):
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def project_graph() -> dict[str, set[str]]:
    """Module -> the project modules it imports, a package's `__init__` left out as a target (importing
    `pkg.mod` runs `pkg/__init__.py`, which is not a dependency on everything the package holds)."""
    return {name: {n for n in imports(path) if n in MODULES and n != name} for name, path in MODULES.items()}


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_each_package_imports_only_what_its_layer_allows(path: Path) -> None:
    module = module_name(path)
    bad = forbidden(module, imports(path))
    assert not bad, f"{module} ({layer_of(module)}) imports {sorted(bad)}; it may import {ALLOWED[layer_of(module)]}"


def test_no_import_cycles() -> None:
    assert cycles(project_graph()) == []


@pytest.mark.parametrize("module", TOOL_DATA)
def test_what_the_tools_may_use_of_model_store_holds_no_training_code(module: str) -> None:
    """The allowance for `model_store.data` and `model_store.shipped` must not be a back door."""
    inside = [p for name, p in MODULES.items() if _within(name, module)]
    assert inside
    for path in inside:
        project = {n for n in imports(path) if n.split(".")[0] in TOPS}
        assert all(_within(n, "service.common") or any(_within(n, d) for d in TOOL_DATA) for n in project), path
        assert not imports(path) & HEAVY, path


@pytest.mark.parametrize("path", [p for p in SOURCES if p.relative_to(ROOT).parts[0] != "eibert"],
                         ids=lambda p: str(p.relative_to(ROOT)))  # fmt: skip
def test_nothing_below_the_cli_spawns_it(path: Path) -> None:
    """Tools start services by their own entry points (`python -m service.cloud`), never the CLI."""
    text = path.read_text()
    for spawn in ('"-m", "eibert"', "'-m', 'eibert'", '["eibert"', 'which("eibert")'):
        assert spawn not in text, f"{path.relative_to(ROOT)} spawns the CLI ({spawn})"


def spawned(path: Path) -> set[str]:
    """Modules a module starts by module path: the literal after `"-m"` in a list or tuple (an f-string counts
    by its leading text, so `[python, "-m", f"service.{name}"]` spawns `service`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.List | ast.Tuple):
            continue
        for flag, target in zip(node.elts, node.elts[1:], strict=False):
            if not (isinstance(flag, ast.Constant) and flag.value == "-m"):
                continue
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                found.add(target.value)
            elif isinstance(target, ast.JoinedStr) and target.values and isinstance(target.values[0], ast.Constant):
                found.add(str(target.values[0].value).rstrip("."))
    return found


def spawns_forbidden(module: str, targets: Iterable[str]) -> set[str]:
    """Starting `python -m X` is a dependency on X like an import, except the services' own entry points
    (`service`, `service.cloud`, `service.edge`), which any tool may start, and a module's own package."""
    entry_points = {"service", "service.cloud", "service.edge"}
    project = {t for t in targets if t.split(".")[0] in TOPS and t not in entry_points}
    return forbidden(module, {_resolve(t) for t in project})


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_package_spawns_what_it_may_not_import(path: Path) -> None:
    bad = spawns_forbidden(module_name(path), spawned(path))
    assert not bad, f"{path.relative_to(ROOT)} spawns {sorted(bad)} by module path"


MAX_MODULE_LINES = 450


def _too_long(path: Path) -> str | None:
    lines = len(path.read_text().splitlines())
    return f"{path.name} has {lines} lines (limit {MAX_MODULE_LINES})" if lines > MAX_MODULE_LINES else None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_the_line_limit(path: Path) -> None:
    """A module past a few hundred lines mixes concerns: split it along its seams instead."""
    assert _too_long(path) is None, _too_long(path)


def test_the_layering_checks_can_fail(tmp_path: Path) -> None:
    """Each rule on a known violation: the peers, the services, training code, the cloud's internals, cycles."""
    assert forbidden("simulators.demo", {"loadtests.stand_in"}) == {"loadtests.stand_in"}
    assert forbidden("loadtests.run", {"simulators.fleet", "model_store.export"}) == {
        "simulators.fleet",
        "model_store.export",
    }
    assert forbidden("simulators.summary", {"service.cloud.schemas", "service.common.fleet_metrics"}) == {
        "service.cloud.schemas"
    }
    assert forbidden("service.edge.app", {"service.cloud.keys"}) == {"service.cloud.keys"}
    assert forbidden("service.cloud.app", {"service.edge.slot"}) == {"service.edge.slot"}
    assert forbidden("service.common.manifest", {"service.edge.slot", "model_store.export"}) == {
        "service.edge.slot",
        "model_store.export",
    }
    assert forbidden("service.devstack.stack", {"service.cloud.keys"}) == {"service.cloud.keys"}
    assert forbidden("service.edge.encoder", {"torch"}) == {"torch"}
    assert forbidden("model_store.build", {"simulators.fleet", "service.cloud.keys"}) == {
        "simulators.fleet",
        "service.cloud.keys",
    }
    assert forbidden("loadtests.run", {"model_store.shipped", "model_store.data.paths", "service.devstack"}) == set()
    assert forbidden("eibert.cli", {"simulators.cli", "loadtests.sections"}) == set()

    circle = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": {"e"}}
    assert cycles(circle) == [["a", "b", "c"], ["e"]]
    assert cycles({"a": {"b"}, "b": set()}) == []

    source = tmp_path / "lazy.py"
    source.write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from simulators.fleet import Fleet\n"
        "def f():\n    from service.common import manifest\n    import loadtests.run\n"
    )
    assert imports(source) >= {"simulators.fleet", "service.common.manifest", "loadtests.run"}

    spawner = tmp_path / "spawner.py"
    spawner.write_text(
        'import sys\nname = "demo"\n'
        'a = [sys.executable, "-m", "eibert", "demo"]\nb = (sys.executable, "-m", f"simulators.{name}")\n'
        'c = [sys.executable, "-m", "locust"]\nd = [sys.executable, "-m", f"service.{name}"]\n'
    )
    assert spawned(spawner) == {"eibert", "simulators", "locust", "service"}
    assert spawns_forbidden("loadtests.run", spawned(spawner)) == {"eibert", "simulators"}

    long_module = tmp_path / "long.py"
    long_module.write_text("x = 1\n" * (MAX_MODULE_LINES + 1))
    assert _too_long(long_module) == f"long.py has {MAX_MODULE_LINES + 1} lines (limit {MAX_MODULE_LINES})"
    long_module.write_text("x = 1\n" * MAX_MODULE_LINES)
    assert _too_long(long_module) is None


@pytest.mark.parametrize("module", ["service.common", "service.edge", "model_store.data"])
def test_declared_surface_matches_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    public = {n for n in vars(mod) if not n.startswith("_") and not isinstance(getattr(mod, n), type(mod))}
    public -= {"annotations"}
    assert set(mod.__all__) == public
