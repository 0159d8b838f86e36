"""`report.md` of a ranker bundle, rendered from its manifest (what `eibert ranker build` measured), so the report
can never disagree with the recorded figures: `eibert ranker report --bundle DIR` rewrites it."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from service.common.manifest import read_manifest

METRICS = ("ndcg@10", "recall@10", "phr@10", "recall@20", "ndcg@20", "recall_repeat@10", "recall_new@10")
LABELS = {
    "ranker": "**learned ranker** (this bundle)",
    "p_topfreq": "P-TopFreq: own products by count",
    "p_topfreq_time": "P-TopFreq, purchases weighted 0.5^(days ago / 30)",
    "gp_topfreq": "GP-TopFreq: own products, then popular",
    "g_topfreq": "G-TopFreq: popularity",
    "tifuknn": "TIFU-KNN (Hu et al., SIGIR 2020), grid on tuning users",
    "ranker_v0": "content ranker of earlier bundles (text only)",
}
TARGET_RATIO = 1.08
TARGET_NEW = 0.03


def _row(name: str, m: dict[str, float]) -> str:
    return f"| {LABELS.get(name, name)} | " + " | ".join(f"{m[k]:.4f}" for k in METRICS) + " |"


def render(manifest_metrics: dict[str, Any], build: dict[str, Any], release_id: str) -> str:
    basket = manifest_metrics["basket"]
    methods = basket["methods"]
    training = build.get("ranker", {})
    lines = [
        f"# {release_id}: the learned ranker",
        "",
        f"Encoder: `{training.get('source_bundle', '?')}`'s, byte for byte (its own report has the encoder's figures).",
        f"Built by: `{training.get('command', '?')}`; data (relative to the data root): {training.get('data')}.",
        f"Trained on {training.get('users', '?')} tuning users' lists ({training.get('rows', '?'):,} rows; "
        f"{training.get('epochs', '?')} epochs, best validation loss {training.get('best_valid_loss', '?')}).",
        f"`ranker.json`: {basket['ranker_bytes']:,} bytes.",
        "",
        f"## Next basket, Instacart: {basket['users']} users not tuned on (seed {basket['seed']})",
        "",
        "Target = each user's last order; candidates = the user's earlier products + the 100 most popular; "
        "catalogue-wide metrics (a basket item outside the candidates is a miss).",
        "",
        "| method | " + " | ".join(METRICS) + " |",
        "|---|" + "---|" * len(METRICS),
        *(_row(name, m) for name, m in methods.items()),
        "",
    ]
    if "ranker" in methods:
        ours, ptime, tifu = methods["ranker"], methods["p_topfreq_time"], methods["tifuknn"]
        ratio = ours["ndcg@10"] / ptime["ndcg@10"] if ptime["ndcg@10"] else float("nan")
        lines += [
            "| target | measured | met |",
            "|---|---|---|",
            f"| NDCG@10 >= {TARGET_RATIO}x time-weighted P-TopFreq | {ratio:.3f}x | "
            f"{'yes' if ratio >= TARGET_RATIO else 'no'} |",
            f"| NDCG@10 above TIFU-KNN | {ours['ndcg@10']:.4f} vs {tifu['ndcg@10']:.4f} | "
            f"{'yes' if ours['ndcg@10'] > tifu['ndcg@10'] else 'no'} |",
            f"| recall_new@10 >= {TARGET_NEW} | {ours['recall_new@10']:.4f} | "
            f"{'yes' if ours['recall_new@10'] >= TARGET_NEW else 'no'} |",
            "",
        ]
    if basket.get("diagnostics", {}).get("ranker_new_items_only"):
        new_only = basket["diagnostics"]["ranker_new_items_only"]
        lines += [
            f"recall_new@10 when all ten slots go to the learned ranker's best *new* candidates: "
            f"{new_only['recall_new@10']:.4f} (NDCG@10 {new_only['ndcg@10']:.4f}). New items can only be hit among the "
            "100 popular candidates, so this is about the most any ranking reaches on this protocol.",
            "",
        ]
    if basket.get("ablations"):
        lines += [
            "## Ablations: each feature group held at 0, retrained, same users",
            "",
            "| without | NDCG@10 | recall@10 | recall_new@10 |",
            "|---|---|---|---|",
            *(
                f"| {name.removeprefix('without_')} | "
                + " | ".join(f"{m[k]:.4f}" for k in ("ndcg@10", "recall@10", "recall_new@10"))
                + " |"
                for name, m in basket["ablations"].items()
            ),
            "",
        ]
    if "movielens" in basket:
        ml = basket["movielens"]
        lines += [
            f"## MovieLens next item ({ml['users']} users, target + {ml['candidates'] - 1} unrated movies)",
            "",
            "| method | HR@10 | NDCG@10 |",
            "|---|---|---|",
            *(
                f"| {name} | {ml[name]['hr@10']:.4f} | {ml[name]['ndcg@10']:.4f} |"
                for name in ("ranker_learned", "ranker", "ranker_content_only", "popularity")
                if name in ml
            ),
            "",
        ]
    timings = basket.get("timings_s", {})
    if timings:
        lines += ["Build time (s): " + ", ".join(f"{k.removesuffix('_s')} {v:.0f}" for k, v in timings.items()), ""]
    return "\n".join(lines)


def write_report(bundle: Path) -> Path:
    manifest = read_manifest(bundle)
    out = bundle / "report.md"
    out.write_text(render(manifest.metrics, manifest.build, manifest.release_id))
    return out


def run_ranker_report(args: argparse.Namespace) -> int:
    print(write_report(Path(args.bundle)))
    return 0
