"""`eibert ranker build`: train the learned ranker on a bundle's embeddings and ship it as a new bundle version.

The new bundle keeps the source bundle's `model.onnx` and `tokenizer.json` byte for byte and adds `ranker.json`,
so a rollout from the source version to this one changes the ranker and not the encoder. Everything comes from
a committed TOML config (`model_store/configs/ranker/*.toml`); the manifest records the command, the data
(relative paths), the training statistics and the evaluation on users the ranker was not trained on, next to
the baselines of the same run and one ablation per feature group.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import shlex
import time
import tomllib
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from model_store.basket_protocol import SEED, build_cases, case_metrics, is_tuning_user, mean_metrics
from model_store.basket_requests import ProductEmbeddings, features, order_scores, rank_inputs
from model_store.data.instacart import load_orders, load_products
from model_store.encoders import load_encoder
from model_store.eval_basket import evaluate_basket
from model_store.eval_rank import evaluate_rank
from model_store.ranker_movielens import movielens_lists
from model_store.ranker_report import write_report
from model_store.train_ranker import Lists, TrainConfig, build_lists, train
from service.common.contract import MODEL_FILE, RANKER_FILE, TOKENIZER_FILE
from service.common.manifest import sha256_file, verify_bundle, write_bundle
from service.edge import ranker_features
from service.edge.learned_ranker import LearnedRanker
from service.edge.ranker import RankerConfig

log = logging.getLogger(__name__)

# Feature groups for the ablation rows: each is trained and evaluated again with its columns held at 0.
GROUPS: dict[str, tuple[str, ...]] = {
    "repeat": ("seen", "log_count", "share", "share_since_first", "recent_share", "in_last_session"),
    "recency": ("log_days_since", *(f for f in ranker_features.FEATURES if f.startswith("intensity_"))),
    "cycle": ("has_cycle", "log_phase", "due", "cycle_cv", "related_due", "user_gap_ratio"),
    "hour_weekday": ("item_hour", "item_dow", "related_hour", "related_dow"),
    "content": ("content", "max_sim", "related_share", "related_recency"),
    "prior": ("prior", "has_prior"),
}


class RankerBuildConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    source_bundle: str  # repository-relative bundle directory whose encoder the ranker is trained on
    version: str = Field(pattern=r"^[A-Za-z0-9_.+-]+$")
    orders: str  # data-root-relative paths
    products: str
    seed: int = SEED
    targets_per_user: int = Field(default=20, ge=1)
    train: dict[str, Any] = Field(default_factory=dict)  # TrainConfig fields
    movielens: str | None = None  # data-root-relative MovieLens directory: training lists and `eval rank`
    movielens_targets_per_user: int = Field(default=10, ge=1)
    ablations: bool = True


def _training_lists(
    config: RankerBuildConfig, orders: dict, emb: ProductEmbeddings, counts: Any, encoder: Any, data_root: Path
) -> Lists:
    tc = TrainConfig(**config.train)
    tuning_orders = {u: o for u, o in orders.items() if is_tuning_user(u, seed=config.seed)}
    train_cases, _ = build_cases(tuning_orders, targets_per_user=config.targets_per_user, min_history=3)
    lists = build_lists(train_cases, emb, counts, tc)
    if not config.movielens:
        return lists
    rc = RankerConfig(top_n=tc.top_n, temperature=tc.temperature)
    ml = movielens_lists(
        encoder,
        data_root / config.movielens,
        seed=config.seed,
        targets_per_user=config.movielens_targets_per_user,
        config=rc,
    )
    return Lists(*(np.concatenate([a, b]) for a, b in zip(astuple_lists(lists), astuple_lists(ml), strict=True)))


def _cache_key(config: RankerBuildConfig, model_sha256: str, data_root: Path) -> str:
    """Training lists depend on the encoder, the data files, the feature list and the list-making settings only,
    so retraining with other optimiser settings (or resuming an interrupted build) reuses them."""
    h = hashlib.sha256()
    parts = [model_sha256, *ranker_features.FEATURES, config.orders, config.products, str(config.movielens)]
    parts += [str(config.seed), str(config.targets_per_user), str(config.movielens_targets_per_user)]
    tc = TrainConfig(**config.train)
    parts += [str(tc.top_n), str(tc.temperature)]
    for rel in (config.orders, config.products):
        parts.append(sha256_file(data_root / rel))
    h.update("\n".join(parts).encode())
    return h.hexdigest()[:16]


def _cached(path: Path, make: Any) -> Lists:
    if path.is_file():
        with np.load(path) as z:
            return Lists(z["x"], z["label"], z["group"])
    lists = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, x=lists.x, label=lists.label, group=lists.group)
    tmp.replace(path)
    return lists


def astuple_lists(lists: Lists) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return lists.x, lists.label, lists.group


def _zeroed(x: np.ndarray, names: tuple[str, ...]) -> np.ndarray:
    cols = [ranker_features.INDEX[n] for n in names]
    x = x.copy()
    x[..., cols] = 0.0
    return x


def build(
    config: RankerBuildConfig, out: Path, *, data_root: Path, repo_root: Path, command: str, cache_dir: Path
) -> dict[str, Any]:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    source = repo_root / config.source_bundle
    src_manifest = verify_bundle(source)
    encoder = load_encoder(source)
    orders = load_orders(data_root / config.orders)
    products = load_products(data_root / config.products)
    cases, counts = build_cases(orders)
    emb = ProductEmbeddings(encoder, products, [p for c in cases for p in c.candidates])
    tc = TrainConfig(**config.train)
    key = _cache_key(config, src_manifest.files[MODEL_FILE].sha256, data_root)
    lists = _cached(
        cache_dir / f"lists-{key}.npz", lambda: _training_lists(config, orders, emb, counts, encoder, data_root)
    )
    timings["features_s"] = time.perf_counter() - t0
    spec, stats = train(lists, tc)
    timings["train_s"] = time.perf_counter() - t0 - timings["features_s"]

    report = [c for c in cases if not is_tuning_user(c.user_id, seed=config.seed)]
    report_x = [features(rank_inputs(c, emb, counts), LearnedRanker(spec).config) for c in report]
    ablations: dict[str, dict[str, float]] = {}
    for group, names in GROUPS.items() if config.ablations else ():
        zeroed = Lists(_zeroed(lists.x, names), lists.label, lists.group)
        model = LearnedRanker(train(zeroed, tc)[0])
        m = mean_metrics(
            [
                case_metrics(order_scores(c, model.score_features(_zeroed(x, names))), c)
                for c, x in zip(report, report_x, strict=True)
            ]
        )
        ablations[f"without_{group}"] = {
            "ndcg@10": m.ndcg_10,
            "recall@10": m.recall_10,
            "recall_new@10": m.recall_new_10,
        }
        log.info("ablation without %s: %s", group, ablations[f"without_{group}"])
    timings["ablations_s"] = time.perf_counter() - t0 - timings["features_s"] - timings["train_s"]

    learned = LearnedRanker(spec)
    result = evaluate_basket(encoder, data_root / config.orders, data_root / config.products, learned, seed=config.seed)
    if config.movielens:
        ml_dir = data_root / config.movielens
        rank = evaluate_rank(
            encoder, ml_dir / "movies.csv.gz", ml_dir / "ratings.csv.gz", ml_dir / "tags.csv.gz", learned=learned
        )
        result["movielens"] = rank.to_json_dict()
    timings["evaluation_s"] = time.perf_counter() - t0 - sum(timings.values())
    data = {"orders": config.orders, "products": config.products, "movielens": config.movielens}  # data-root-relative
    training = {
        "command": command,
        "data": data,
        "source_bundle": src_manifest.release_id,
        "train": asdict(tc),
        "targets_per_user": config.targets_per_user,
        **stats,
    }
    spec = spec.model_copy(update={"training": training})
    out.mkdir(parents=True, exist_ok=True)
    ranker_path = out / RANKER_FILE
    ranker_path.write_text(spec.model_dump_json(indent=None) + "\n")
    basket = {**result, "ablations": ablations, "ranker_bytes": ranker_path.stat().st_size, "timings_s": timings}
    write_bundle(
        out,
        model_onnx=source / MODEL_FILE,
        tokenizer_json=source / TOKENIZER_FILE,
        name=src_manifest.name,
        version=config.version,
        dim=src_manifest.dim,
        max_length=src_manifest.max_length,
        teacher=src_manifest.teacher,
        build={**src_manifest.build, "ranker": training},
        metrics={**src_manifest.metrics, "basket": basket},
        extra_files={RANKER_FILE: ranker_path},
    )
    write_report(out)
    return basket


def run_ranker_build(args: argparse.Namespace) -> int:
    from model_store.build import portable_arg
    from model_store.data.paths import REPO_ROOT, data_root

    with open(args.config, "rb") as fh:
        config = RankerBuildConfig.model_validate(tomllib.load(fh))
    command = "eibert " + " ".join(shlex.quote(portable_arg(a)) for a in args.argv)
    out = Path(args.out)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise FileExistsError(f"{out} exists and is not empty; bundles are immutable (use a new version or --force)")
    basket = build(config, out, data_root=data_root(), repo_root=REPO_ROOT, command=command, cache_dir=Path(args.cache))
    print(json.dumps(basket))
    return 0


__all__ = ["GROUPS", "RankerBuildConfig", "build", "run_ranker_build"]
