"""The position-bias experiment on a small seed: a real run of both learners, compared, not a stored figure."""

from __future__ import annotations

import numpy as np
import pytest

from simulators.personas import SKIM_DEPTH, examination, examination_curve, load_catalog_and_personas
from simulators.position_experiment import PositionBiasConfig, run_position_bias
from simulators.summary import PositionBiasResult, render_position_bias


@pytest.fixture(scope="module")
def result() -> PositionBiasResult:
    return run_position_bias(PositionBiasConfig(users=40, days=14, seed=0, learners=("naive", "personal")))


def test_the_corrected_learner_serves_better_slates_than_the_naive_one(result: PositionBiasResult) -> None:
    assert set(result.ndcg_at_10) == {"naive", "personal"}
    assert 0.0 < result.ndcg_at_10["naive"] < result.ndcg_at_10["personal"] <= 1.0
    assert result.ratio == pytest.approx(result.ndcg_at_10["personal"] / result.ndcg_at_10["naive"], abs=1e-3)
    assert result.sessions > 40 * 14  # a few sessions a user a day


def test_personal_curves_are_closer_to_each_users_truth_than_the_fleet_curve(result: PositionBiasResult) -> None:
    e = result.curve_error
    assert e["personal"] is not None and e["fleet"] is not None
    assert e["personal"] < e["fleet"]
    # most of all for the users least like the fleet's average: those who never look past slot 2
    skim = result.curve_error_by_style["skim"]
    assert skim["personal"] is not None and skim["fleet"] is not None and skim["personal"] < skim["fleet"]
    assert sum(result.users_by_style.values()) == 40


def test_the_result_renders_into_the_demo_summary(result: PositionBiasResult) -> None:
    lines = render_position_bias(result)
    assert f"naive {result.ndcg_at_10['naive']:.3f}" in lines[0] and "target 1.05x" in lines[0]
    assert f"personal {result.curve_error['personal']:.3f}" in lines[1]
    assert render_position_bias(None) == []
    assert PositionBiasResult.model_validate_json(result.model_dump_json()) == result


def test_personas_examine_slates_in_their_own_ways() -> None:
    _, personas = load_catalog_and_personas(200, seed=3)
    skimmers = [p for p in personas if p.examine_depth == SKIM_DEPTH]
    deep = [p for p in personas if p.examine_depth is None and p.examine_decay < 0.35]
    assert 20 <= len(skimmers) <= 60 and 20 <= len(deep) <= 60
    for p in skimmers:
        assert examination(p, SKIM_DEPTH - 1) > 0 and examination(p, SKIM_DEPTH) == 0.0
    curves = np.stack([examination_curve(p, 10) for p in personas])
    assert (curves[:, 0] == 1.0).all() and (np.diff(curves, axis=1) <= 0).all()
    assert curves[:, 5].std() > 0.1  # not one curve for everyone
