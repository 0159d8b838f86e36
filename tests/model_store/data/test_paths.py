from __future__ import annotations

import re
from pathlib import Path

import pytest

from model_store.data.paths import DATA_ENV, REPO_ROOT, data_file, data_root, portable_path, repo_relative


def test_env_overrides_default(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path))
    assert data_root() == tmp_path
    assert data_file("stsb", "x.gz") == tmp_path / "stsb" / "x.gz"


def test_env_pointing_nowhere_is_an_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv(DATA_ENV, str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match=DATA_ENV):
        data_root()


def test_default_is_shared_data_beside_checkout(monkeypatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert (data_root() / "README.md").is_file()


# A path that starts at a root: "/" after anything but a word character, ".", "~" or "-" ("../x", "glue/CoLA" and
# "sentence-transformers/all-MiniLM-L6-v2" are not), followed by at least two components.
_ABSOLUTE = re.compile(r"(?<![\w.~-])/[\w.@+-]+/[\w.@+/-]*")


def absolute_paths(text: str) -> list[str]:
    """Absolute machine paths in a manifest or report (what the build must never record)."""
    return _ABSOLUTE.findall(text)


def test_absolute_paths_finds_planted_paths_and_spares_relative_ones() -> None:
    planted = 'Evaluation data: `/work/shared/data/stsb/sts-dev.csv.gz` {"data_root": "/work/shared/data"}'
    assert absolute_paths(planted) == ["/work/shared/data/stsb/sts-dev.csv.gz", "/work/shared/data"]
    fine = '"../shared/data" `stsb/sts-dev.csv.gz` glue/CoLA ../../tmp/x/y sentence-transformers/all-MiniLM-L6-v2 1/2'
    assert absolute_paths(fine + " | 1 - cos | x100 / 3") == []


def test_portable_path_is_relative_to_the_data_root_or_the_repository(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv(DATA_ENV, raising=False)
    assert portable_path(data_file("stsb", "sts-dev.csv.gz")) == "stsb/sts-dev.csv.gz"
    assert repo_relative(data_root()) == "../shared/data"  # the layout every machine has
    outside = portable_path(tmp_path / "movielens")
    assert not Path(outside).is_absolute() and (REPO_ROOT / outside).resolve() == (tmp_path / "movielens").resolve()
    assert portable_path(REPO_ROOT / "model_store" / "configs") == "model_store/configs"
