"""`report.md` beside the bundle: what each stage bought, at what size, with the teacher from the same run."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from model_store.eval_glue import PROBE_TASKS

LABELS = {
    "shipped": "shipped (the config's recipe, below)",
    "oneway": "one-way KD (frozen teacher, distillation losses only: no labelled pairs, no interplay)",
    "no_interplay": "no mutual interplay (frozen teacher, labelled pairs kept)",
    "with_interplay": "with mutual interplay (the teacher's top keeps learning)",
    "static": "static student (no transformer layers, Model2Vec-style)",
    "no_pruning": "no pruning (full 30,522 vocabulary, same bytes)",
    "recurrence": "with parameter recurrence (the unique layers applied twice, same bytes)",
    "no_recurrence": "no parameter recurrence (the unique layers applied once, same bytes)",
    "bottleneck": "bottleneck embedding (E = H/2, the bytes spent on a larger vocabulary)",
    "no_bottleneck": "no bottleneck embedding (E = H, a smaller vocabulary at the same bytes)",
}


def _save(plt: Any, fig: Any, path: Path) -> str:
    """Write one figure beside the bundle, free its memory, and return the file name the report links."""
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _plots(out: Path, results: dict, teacher_sts: float, teacher_bytes: int) -> list[str]:
    import matplotlib  # lazy: only a finished build draws, and matplotlib costs ~1 s to import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = []
    shipped = results["shipped"]
    fig, ax = plt.subplots(figsize=(6, 3.2))
    groups = list(shipped.module_bytes)
    ax.barh(groups, [shipped.module_bytes[g] / 1e6 for g in groups], color="#4c72b0")
    ax.set(xlabel="estimated int8 MB", title="Shipped student: bytes per module")
    names.append(_save(plt, fig, out / "report-size-breakdown.png"))

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, r in results.items():
        ax.scatter(r.int8_bytes / 1e6, r.sts_int8, label=f"{name} int8")
        ax.scatter(r.fp32_bytes / 1e6, r.sts_fp32, marker="x", color="grey")
    ax.scatter(teacher_bytes / 1e6, teacher_sts, marker="*", s=150, color="black", label="teacher fp32")
    ax.set(xscale="log", xlabel="model.onnx MB (log)", ylabel="STS-B dev Spearman x100")
    ax.set_title("Quality vs size (x = fp32 export of each student)")
    ax.legend(fontsize=7)
    names.append(_save(plt, fig, out / "report-quality-vs-size.png"))

    fig, (a1, a2) = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, r in results.items():
        steps = [h["step"] for h in r.history]
        a1.plot(steps, [h["cos"] for h in r.history], label=name)
        held = [(h["step"], h["heldout_cos"]) for h in r.history if "heldout_cos" in h]
        if held:
            a2.plot(*zip(*held, strict=True), marker="o", label=name)
    a1.set(title="train: 1 - cos(student, teacher)", xlabel="step")
    a2.set(title="held-out cos(student, teacher)", xlabel="step")
    a1.legend(fontsize=7)
    names.append(_save(plt, fig, out / "report-training.png"))
    return names


def _rank_section(metrics: dict[str, Any]) -> list[str]:
    """The MovieLens ranking figures, when the build measured them (`rank_eval`)."""
    if "rank" not in metrics:
        return ["MovieLens rank evaluation: not run in this build (`rank_eval = false`).", ""]
    s, t = metrics["rank"], metrics["teacher_rank"]
    return [
        f"MovieLens next-item ranking (`eibert eval rank` protocol, `{metrics['rank_eval_data']}`, {s['users']} users, "
        f"{s['candidates']} candidates each; the edge ranker with a log-popularity prior):",
        "",
        "| embeddings | ranker NDCG@10 | ranker HR@10 | content only NDCG@10 | popularity NDCG@10 |",
        "|---|---|---|---|---|",
        f"| teacher | {t['ranker']['ndcg@10']:.4f} | {t['ranker']['hr@10']:.4f} | "
        f"{t['ranker_content_only']['ndcg@10']:.4f} | {t['popularity']['ndcg@10']:.4f} |",
        f"| **shipped int8** | **{s['ranker']['ndcg@10']:.4f}** | {s['ranker']['hr@10']:.4f} | "
        f"{s['ranker_content_only']['ndcg@10']:.4f} | {s['popularity']['ndcg@10']:.4f} |",
        "",
        f"NDCG@10 retention vs the teacher: **{100 * metrics['rank_ndcg_retention']:.1f}%**.",
        "",
    ]


def _glue_section(metrics: dict[str, Any]) -> list[str]:
    """The GLUE frozen probes (`eibert eval glue` protocol): teacher beside the shipped int8 model, per task."""
    if "glue" not in metrics:
        return ["GLUE frozen probes: not run in this build.", ""]
    g = metrics["glue"]
    s, t, share = g["student"], g["teacher"], g["task_retention"]
    # Columns in the protocol's order, each cell looked up by task name: a manifest, or a teacher read back from the
    # stage cache, holds its tasks in JSON's sorted order (eibert-small-0.5.0's first report put the teacher's SST-2
    # under MRPC).
    names = [p.name for p in PROBE_TASKS if p.name in s["tasks"]]
    limit = metrics.get("glue_limit")
    rows = "all rows (SST-2: the first 20,000 train rows)" if limit is None else f"at most {limit} rows per split"
    lines = [
        f"GLUE frozen probes (`eibert eval glue` protocol, `{metrics['glue_eval_data']}`, {rows}): logistic "
        "regression on frozen embeddings (u for CoLA and SST-2, [u, v, |u-v|, u*v] for MRPC and RTE), trained on "
        "train, scored on dev (CoLA MCC, SST-2 accuracy, MRPC mean of accuracy and F1, RTE accuracy), x100:",
        "",
        "| embeddings | " + " | ".join(names) + " | mean |",
        "|---|" + "---|" * (len(names) + 1),
        "| teacher | " + " | ".join(f"{t['tasks'][k]:.2f}" for k in names) + f" | {t['mean']:.2f} |",
        "| **shipped int8** | " + " | ".join(f"{s['tasks'][k]:.2f}" for k in names) + f" | **{s['mean']:.2f}** |",
        "| share of the teacher | "
        + " | ".join("n/a" if share[k] is None else f"{100 * share[k]:.1f}%" for k in names)
        + f" | **{100 * g['mean_retention']:.1f}%** |",
        "",
    ]
    return lines


def _files_section(corpus: dict[str, Any]) -> list[str]:
    """Your own distillation files (`[corpus] files`), when the config names any."""
    files = corpus.get("files") or []  # absent in corpus stages cached before the field existed
    if not files:
        return []
    rows = [f"| `{f['path']}` | {f['bytes']:,} | {f['sentences']:,} | {f['kept']:,} |" for f in files]
    return ["| own file | bytes | sentences | new after deduplication |", "|---|---|---|---|", *rows, ""]


def _anchors_section(metrics: dict[str, Any], teacher_sts: float) -> list[str]:
    """What a user would try instead, from the same teacher in the same run (`model_store/anchors.py`)."""
    anchors = metrics.get("anchors") or []
    if not anchors:
        return []
    lines = [
        "## Anchors: the obvious alternatives, same teacher, same run",
        "",
        "CPU milliseconds per sentence: process CPU time, one onnxruntime (or numpy) thread, batches of 32, the "
        "same 512 dev sentences for every row.",
        "",
        "| model | model file bytes | STS-B dev | retention vs teacher | CPU ms / sentence | detail |",
        "|---|---|---|---|---|---|",
    ]
    for a in anchors:
        lines.append(
            f"| {a['label']} | {a['bytes']:,} | {a['sts']:.2f} | {100 * a['sts'] / teacher_sts:.1f}% | "
            f"{a['ms_per_sentence']:.3f} | {a['detail']} |"
        )
    sts = metrics["sts_dev_spearman"]
    lines.append(
        f"| **shipped int8 (this bundle)** | **{metrics['model_onnx_bytes']:,}** | **{sts:.2f}** | "
        f"**{100 * sts / teacher_sts:.1f}%** | {metrics['ms_per_sentence']:.3f} | |"
    )
    return [*lines, ""]


def _steps(r) -> str:
    """Steps trained, and where an early stop kept its weights from."""
    if r.steps_run is None:
        return "n/a"
    stop = r.early_stop or {}
    if stop.get("stopped_at") is not None:
        return f"{r.steps_run:,} (stopped; best {stop['best_step']:,})"
    return f"{r.steps_run:,}"


def write_report(
    out: Path,
    manifest: dict[str, Any],
    results: dict,
    qres,
    teacher_sts: float,
    corpus: dict[str, Any],
    metrics: dict[str, Any],
) -> Path:
    from model_store.teacher import load_teacher

    teacher = load_teacher(manifest["build"]["config"].get("teacher", {}).get("path"))
    teacher_bytes = teacher.weights.stat().st_size
    plots = _plots(out, results, teacher_sts, teacher_bytes)
    shipped = results["shipped"]
    prune = metrics["prune"]
    lines = [
        f"# Build report: {manifest['name']}-{manifest['version']}",
        "",
        f"Command: `{manifest['build']['command']}`  ",
        f"Evaluation data: `{metrics['eval_data']}` (STS-B dev, Spearman x100 of cosine vs gold; data paths are "
        f"relative to the data root `{manifest['build']['data_root']}`, others to the repository).  ",
        "Every figure below was measured in this build run; rerun the command to reproduce it.",
        "",
        "## Result",
        "",
        "| model | model.onnx bytes | STS-B dev | retention vs teacher |",
        "|---|---|---|---|",
        f"| teacher {teacher.name.rsplit('/', 1)[-1]} fp32 (PyTorch) | {teacher_bytes:,} (weights) | "
        f"{teacher_sts:.2f} | 100% |",
        f"| **shipped int8** | **{qres.bytes:,}** | **{qres.sts:.2f}** | **{100 * qres.sts / teacher_sts:.1f}%** |",
        f"| shipped fp32 | {qres.fp32_bytes:,} | {qres.fp32_sts:.2f} | {100 * qres.fp32_sts / teacher_sts:.1f}% |",
        "",
        *_rank_section(metrics),
        *_glue_section(metrics),
        f"Size budget {metrics['size_budget_bytes']:,} bytes; whole bundle gzip-compressed for transport: "
        f"{metrics['bundle_gzip_bytes']:,} bytes. Student: {shipped.params:,} parameters, "
        f"vocabulary {shipped.vocab:,}.",
        "",
        "## Ablations (same corpus, targets, steps and byte budget)",
        "",
        "| variant | params | vocab | E | STS before training | STS fp32 | STS int8 (all modules) | int8 bytes "
        "| rank NDCG@10 int8 | GLUE mean int8 | steps | train s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        rank = f"{r.rank.ndcg:.4f}" if r.rank else "not run"
        glue = f"{r.glue.mean:.2f}" if r.glue else "not run"
        lines.append(
            f"| {LABELS.get(name, name)} | {r.params:,} | {r.vocab:,} | {r.embed_dim} | {r.sts_init:.2f} | "
            f"{r.sts_fp32:.2f} | {r.sts_int8:.2f} | {r.int8_bytes:,} | {rank} | {glue} | {_steps(r)} | "
            f"{r.train_seconds:,.0f} |"
        )
    lines += [
        "",
        "fp32 vs int8 is the difference between the two STS columns of each row; module-wise figures follow.",
        "",
        *_anchors_section(metrics, teacher_sts),
        "## Module-wise int8 quantization (onnxruntime `quantize_dynamic`, QInt8 weights, per-channel)",
        "",
        f"fp32 export: {qres.fp32_sts:.2f} STS, {qres.fp32_bytes:,} bytes.",
        "",
        "| module group quantized alone | nodes | model bytes | STS | cost (points) |",
        "|---|---|---|---|---|",
    ]
    for row in qres.table:
        lines.append(f"| {row.group} | {row.nodes} | {row.bytes:,} | {row.sts:.2f} | {row.drop:+.2f} |")
    lines += [
        "",
        f"Shipped: int8 {', '.join(qres.int8_groups) or 'none'}; fp32 kept: {', '.join(qres.kept_fp32) or 'none'}"
        f" -> {qres.bytes:,} bytes, STS {qres.sts:.2f}.",
        "",
        f"ONNX export check vs PyTorch (256 dev sentences): max |diff| {shipped.export_max_abs_diff:.2e}, "
        f"min cosine {shipped.export_min_cosine:.6f}.",
        "",
        "## Hard token pruning",
        "",
        f"Kept {prune['kept_vocab']:,} of {prune['teacher_vocab']:,} tokens ({prune['kept_characters']} character "
        f"tokens kept so every word re-segments). On {prune['heldout_words']:,} held-out words: [UNK] rate "
        f"{100 * prune['unk_rate_teacher']:.3f}% (teacher) -> {100 * prune['unk_rate_pruned']:.3f}% (pruned); "
        f"{100 * prune['resegmented_words']:.2f}% of words re-segmented; tokens per word "
        f"{prune['tokens_per_word_teacher']:.3f} -> {prune['tokens_per_word_pruned']:.3f}.",
        "",
        "## Corpus",
        "",
        f"{corpus['train']:,} training sentences ({corpus['tokens']:,} teacher tokens) and {corpus['heldout']:,} "
        "held out, deduplicated; STS-B dev and test sentences excluded. Sources before deduplication: "
        + ", ".join(f"{k} {v:,}" for k, v in sorted(corpus["sources"].items()))
        + ".",
        "",
        *_files_section(corpus),
        "## Plots",
        "",
        *[f"![{p}]({p})" for p in plots],
        "",
        "## Stage timings (seconds, this run; cached stages count only their lookup)",
        "",
        "```",
        json.dumps(metrics["timings_s"], indent=1),
        "```",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
