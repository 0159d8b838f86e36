"""`ranker.json`: checked before use; a bad one is a BundleError, so the node keeps what it serves."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from service.common.bounded_json import RANKER_MAX_BYTES
from service.common.errors import BundleError
from service.edge.learned_ranker import parse_ranker
from service.edge.ranker_features import FEATURES, INDEX
from service.edge.slot import load_model
from tests.edge.ranker_files import bundle_with_ranker, hand_ranker


def _json(**changes) -> bytes:
    raw = json.loads(hand_ranker({"log_count": 1.0}).model_dump_json())
    raw.update(changes)
    return json.dumps(raw).encode()


def test_a_valid_file_scores_its_linear_combination() -> None:
    model = parse_ranker(hand_ranker({"log_count": 2.0, "prior": -1.0}).model_dump_json().encode())
    x = np.zeros((2, len(FEATURES)))
    x[0, INDEX["log_count"]], x[1, INDEX["prior"]] = 1.0, 1.0
    np.testing.assert_allclose(model.score_features(x), [2.0, -1.0])


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (_json(features=list(reversed(FEATURES))), "not this runtime's"),
        (_json(mean=[0.0] * (len(FEATURES) - 1)), "one value per feature"),
        (_json(hidden_bias=[0.0]), "hidden_weight must be"),
        (_json(scale=[0.0] * len(FEATURES)), "greater than 0"),
        (_json(kind="something-else"), "invalid ranker"),
        (_json(schema_version=2), "invalid ranker"),
        (_json(unknown=1), "invalid ranker"),
        (_json(linear_weight=[float("nan")] * len(FEATURES)), "finite number"),
        (_json(out_weight=[1e300, 0.0]), "less than or equal"),
        (b"[" * 100 + b"]" * 100, "nests deeper"),
        (b" " * (RANKER_MAX_BYTES + 1), "limit"),
        (b"{not json", "not valid JSON"),
    ],
)
def test_malformed_files_are_bundle_errors(data: bytes, message: str) -> None:
    with pytest.raises(BundleError, match=message):
        parse_ranker(data)


def test_a_bundle_loads_its_ranker_and_a_bad_one_refuses_the_bundle(tiny_bundle: Path, tmp_path: Path) -> None:
    good = bundle_with_ranker(
        tiny_bundle, tmp_path / "good", hand_ranker({"log_count": 1.0}).model_dump_json().encode()
    )
    assert load_model(good, warm_up=False).ranker is not None
    assert load_model(tiny_bundle, warm_up=False).ranker is None  # no ranker.json: the content ranker serves
    bad = bundle_with_ranker(tiny_bundle, tmp_path / "bad", _json(features=["seen"]))  # hashes fine, schema not
    with pytest.raises(BundleError, match="not this runtime's"):
        load_model(bad, warm_up=False)
