from __future__ import annotations

import pytest

from model_store.data.paths import DATA_ENV, data_file, data_root


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
