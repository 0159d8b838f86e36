"""Data flows one way: service/ never imports model_store (or torch), no package imports one above it or spawns
the CLI, and packages declare their surface."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted((ROOT / "service").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_service_never_imports_model_store_or_torch(path: Path) -> None:
    assert not _imports(path) & {"model_store", "torch", "transformers", "simulators"}


# Lowest first: a package may import its own rank or below, never above. The CLI package sits on top of all;
# the simulators' demo starts its servers with the stack runner in loadtests, so loadtests sits below them.
RANKS = {"service": 0, "model_store": 1, "loadtests": 2, "simulators": 3, "eibert": 4}
SOURCES = sorted(p for top in RANKS for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_package_imports_one_above_it(path: Path) -> None:
    rank = RANKS[path.relative_to(ROOT).parts[0]]
    above = {name for name in _imports(path) if RANKS.get(name, -1) > rank}
    assert not above, f"{path.relative_to(ROOT)} imports {sorted(above)}, which sit above it"


@pytest.mark.parametrize("path", [p for p in SOURCES if p.relative_to(ROOT).parts[0] != "eibert"],
                         ids=lambda p: str(p.relative_to(ROOT)))  # fmt: skip
def test_nothing_below_the_cli_spawns_it(path: Path) -> None:
    """Tools start services by their own entry points (`python -m service.cloud`), never the CLI."""
    text = path.read_text()
    for spawn in ('"-m", "eibert"', "'-m', 'eibert'", "model_store.cli", '["eibert"', 'which("eibert")'):
        assert spawn not in text, f"{path.relative_to(ROOT)} spawns the CLI ({spawn})"


def _spawned(path: Path) -> set[str]:
    """Top-level packages a module starts by module path: the literal after `"-m"` in a list or tuple (an f-string
    counts by its leading text, so `[python, "-m", f"service.{name}"]` spawns `service`)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    spawned: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.List | ast.Tuple):
            continue
        for flag, target in zip(node.elts, node.elts[1:], strict=False):
            if not (isinstance(flag, ast.Constant) and flag.value == "-m"):
                continue
            if isinstance(target, ast.Constant) and isinstance(target.value, str):
                spawned.add(target.value.split(".")[0])
            elif isinstance(target, ast.JoinedStr) and target.values and isinstance(target.values[0], ast.Constant):
                spawned.add(str(target.values[0].value).split(".")[0])
    return spawned


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_package_spawns_one_above_it(path: Path) -> None:
    """Starting `python -m simulators...` from model_store is the same upward dependency as importing it."""
    rank = RANKS[path.relative_to(ROOT).parts[0]]
    above = {name for name in _spawned(path) if RANKS.get(name, -1) > rank}
    assert not above, f"{path.relative_to(ROOT)} spawns {sorted(above)} by module path, which sit above it"


MAX_MODULE_LINES = 450


def _too_long(path: Path) -> str | None:
    lines = len(path.read_text().splitlines())
    return f"{path.name} has {lines} lines (limit {MAX_MODULE_LINES})" if lines > MAX_MODULE_LINES else None


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_is_over_the_line_limit(path: Path) -> None:
    """A module past a few hundred lines mixes concerns (issue 12): split it along its seams instead."""
    assert _too_long(path) is None, _too_long(path)


def test_the_layering_checks_can_fail(tmp_path: Path) -> None:
    upward = tmp_path / "upward.py"
    upward.write_text("from simulators.fleet import Fleet\nimport eibert.cli\n")
    assert {n for n in _imports(upward) if RANKS.get(n, -1) > RANKS["model_store"]} == {"simulators", "eibert"}
    spawner = tmp_path / "spawner.py"
    spawner.write_text(
        'import sys\nname = "demo"\n'
        'a = [sys.executable, "-m", "eibert", "demo"]\nb = (sys.executable, "-m", f"simulators.{name}")\n'
        'c = [sys.executable, "-m", "locust"]\n'
    )
    assert _spawned(spawner) == {"eibert", "simulators", "locust"}
    assert {n for n in _spawned(spawner) if RANKS.get(n, -1) > RANKS["model_store"]} == {"eibert", "simulators"}
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
