"""The edge's IPW estimator on the Open Bandit Dataset sample that `obp` ships, against the authors' figure.

obp does not install with this project's Python 3.11 by its own metadata (model_store/eval_obd.py says how to
install it beside the venv), so this runs where it is installed and skips elsewhere, CI included."""

from __future__ import annotations

import pytest

pytest.importorskip("obp")

from model_store.eval_obd import PUBLISHED_IPW, PUBLISHED_RELATIVE_EE, run_obd_check


def test_our_ipw_matches_the_published_figure_on_the_shipped_sample() -> None:
    result = run_obd_check()
    assert result["rows"] == 10_000 and result["slots"] == 3
    assert result["ipw"] == pytest.approx(result["obp_ipw"], abs=1e-9)
    assert result["ipw"] == pytest.approx(PUBLISHED_IPW, abs=5e-7)
    assert result["relative_ee"] == pytest.approx(PUBLISHED_RELATIVE_EE, abs=5e-6)
