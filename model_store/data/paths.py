"""Where the shared data sets live.

Every command takes explicit file paths; these defaults only spare typing. The root is `EIBERT_DATA` if set,
else `../shared/data` beside the checkout (how every machine, CI included, lays it out), else the same path
relative to the working directory (an installed, non-editable copy of the package has no checkout to look at).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_ENV = "EIBERT_DATA"
REPO_ROOT = Path(__file__).resolve().parents[2]


def data_root() -> Path:
    """The data root; raises if none of the candidates exists, naming what was tried."""
    env = os.environ.get(DATA_ENV)
    if env:
        root = Path(env).expanduser()
        if not root.is_dir():
            raise FileNotFoundError(f"{DATA_ENV}={env} is not a directory")
        return root
    candidates = [REPO_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    for c in candidates:
        if c.is_dir():
            return c
    tried = ", ".join(str(c) for c in candidates)
    raise FileNotFoundError(f"no data root: set {DATA_ENV} or provide ../shared/data (tried {tried})")


def data_file(*parts: str) -> Path:
    """A file under the data root, e.g. ``data_file("stsb", "sts-dev.csv.gz")``."""
    return data_root().joinpath(*parts)


def repo_relative(path: str | Path) -> str:
    """`path` relative to the repository (with `..` where it lies outside): how commands and configs are recorded,
    so a manifest names no machine's directories and rerunning from the checkout finds the same files."""
    return Path(os.path.relpath(Path(path).expanduser().resolve(), REPO_ROOT.resolve())).as_posix()


def from_repo(path: str | Path) -> Path:
    """A recorded path (relative to the repository, or absolute) as one to open: the inverse of `repo_relative`."""
    p = Path(path).expanduser()
    return p if p.is_absolute() else REPO_ROOT / p


def portable_path(path: str | Path) -> str:
    """A data file as manifests and reports record it: relative to the data root (`stsb/sts-dev.csv.gz`) when it
    lies under it, else relative to the repository (`repo_relative`). Never an absolute path of the builder."""
    p = Path(path).expanduser().resolve()
    try:
        root = data_root().resolve()
    except FileNotFoundError:
        return repo_relative(p)
    return p.relative_to(root).as_posix() if p.is_relative_to(root) else repo_relative(p)
