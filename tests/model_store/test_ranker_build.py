"""`eibert ranker build` end to end on a tiny bundle and synthetic baskets: a new bundle version whose manifest
pins ranker.json, whose encoder is the source's byte for byte, and that the edge loads; `eval basket` reports
every method."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from eibert.cli import main
from model_store.ranker_build import RankerBuildConfig, build
from service.common.contract import MODEL_FILE, RANKER_FILE
from service.common.manifest import verify_bundle
from service.edge.slot import load_model
from tests.model_store.basket_data import write_basket_files

METHODS = {"ranker", "p_topfreq", "p_topfreq_time", "gp_topfreq", "g_topfreq", "tifuknn", "ranker_v0"}
METRICS = {"recall@10", "ndcg@10", "phr@10", "recall@20", "ndcg@20", "recall_repeat@10", "recall_new@10"}


@pytest.fixture(scope="module")
def ranker_bundle(tiny_bundle: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    data = tmp_path_factory.mktemp("baskets")
    write_basket_files(data)
    config = RankerBuildConfig(
        source_bundle=tiny_bundle.name,
        version="0.0.1-r1",
        orders="orders.csv.gz",
        products="products.csv.gz",
        targets_per_user=3,
        train={"epochs": 3, "hidden": 4},
        ablations=True,
    )
    out = tmp_path_factory.mktemp("ranker-bundle")
    cache = tmp_path_factory.mktemp("ranker-cache")
    build(
        config, out, data_root=data, repo_root=tiny_bundle.parent, command="eibert ranker build (test)", cache_dir=cache
    )
    assert len(list(cache.glob("lists-*.npz"))) == 1
    return out, data


def test_the_new_bundle_pins_the_ranker_and_keeps_the_encoder(ranker_bundle: tuple[Path, Path], tiny_bundle: Path):
    out, _ = ranker_bundle
    manifest = verify_bundle(out)
    assert manifest.version == "0.0.1-r1" and RANKER_FILE in manifest.files
    assert manifest.files[MODEL_FILE] == verify_bundle(tiny_bundle).files[MODEL_FILE]
    basket = manifest.metrics["basket"]
    assert set(basket["methods"]) == METHODS and all(set(m) == METRICS for m in basket["methods"].values())
    assert {f"without_{g}" for g in ("repeat", "recency", "cycle", "hour_weekday", "content", "prior")} == set(
        basket["ablations"]
    )
    assert manifest.build["ranker"]["data"] == {
        "orders": "orders.csv.gz",
        "products": "products.csv.gz",
        "movielens": None,
    }
    assert load_model(out, warm_up=False).ranker is not None
    report = (out / "report.md").read_text()
    assert "TIFU-KNN" in report and "| repeat |" in report and f"{basket['ranker_bytes']:,} bytes" in report


def test_eval_basket_prints_every_method(ranker_bundle: tuple[Path, Path], capsys: pytest.CaptureFixture[str]):
    out, data = ranker_bundle
    argv = ["eval", "basket", "--bundle", str(out), "--orders", str(data / "orders.csv.gz")]
    assert main([*argv, "--products", str(data / "products.csv.gz")]) == 0
    result = json.loads(capsys.readouterr().out)
    assert set(result["methods"]) == METHODS and result["users"] + result["tuning_users"] == 24
    assert result["methods"]["p_topfreq"]["recall_new@10"] == 0.0  # own products only: never a new one


def test_movielens_lists_hold_one_list_per_tuning_user(tiny_bundle: Path) -> None:
    from model_store.data.paths import data_file
    from model_store.encoders import load_encoder
    from model_store.ranker_movielens import movielens_lists
    from service.edge.ranker import RankerConfig

    lists = movielens_lists(
        load_encoder(tiny_bundle), data_file("movielens"), seed=0, targets_per_user=1, config=RankerConfig()
    )
    n_lists = int(lists.label.sum())
    assert lists.x.shape == (n_lists * 100, len(lists.x[0])) and (lists.group < 0).all()
    assert 100 < len(set(lists.group.tolist())) < 250  # the tuning share of 494 users, one list each
