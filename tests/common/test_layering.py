"""Data flows one way: service/ never imports model_store (or torch); packages declare their surface."""

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


@pytest.mark.parametrize("module", ["service.common", "service.edge", "model_store.data"])
def test_declared_surface_matches_public_names(module: str) -> None:
    mod = importlib.import_module(module)
    public = {n for n in vars(mod) if not n.startswith("_") and not isinstance(getattr(mod, n), type(mod))}
    public -= {"annotations"}
    assert set(mod.__all__) == public
