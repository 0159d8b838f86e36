"""`eibert build`: corpus -> teacher targets -> hard token pruning -> cross-distillation -> int8 -> bundle.

The stages live in `build_stages` (each cached by a hash of its inputs, so reruns skip finished work), the
shipped recipe and its ablations in `build_variants`, and their evaluation in `build_evaluation`. This module
runs them in order and writes the bundle. The variants share corpus and targets and train for the same steps at
the same byte budget, so the report compares like with like, teacher included, from one run.
"""

from __future__ import annotations

import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from model_store.anchors import cpu_ms_per_sentence, latency_texts, measure_anchors
from model_store.build_config import BuildConfig
from model_store.build_evaluation import RANK_FILES, Evaluator, VariantResult, rank_metrics
from model_store.build_stages import Stages, add_time
from model_store.build_variants import SHIPPED, teacher_vocab_size, variants
from model_store.corpus_files import record_paths
from model_store.data import data_file, data_root
from model_store.data.paths import portable_path, repo_relative
from model_store.eval_glue import GlueScores, compare, glue_dir_files
from model_store.quantize import modulewise
from model_store.report import write_report
from model_store.stage_cache import StageDir, input_hash
from model_store.teacher import load_teacher
from service.common.archive import pack_bundle
from service.common.manifest import write_bundle

log = logging.getLogger("eibert.build")


class Builder:
    """One build: the shared stages, every variant trained and evaluated, the shipped one quantized and bundled."""

    def __init__(
        self,
        cfg: BuildConfig,
        out: Path,
        cache: Path,
        command: str,
        sts_dev: Path,
        *,
        resume: bool = True,
        rank_data: Path | None = None,
        device: str = "cpu",
        glue_data: Path | None = None,
    ) -> None:
        self.cfg, self.out, self.cache, self.command, self.sts_dev = cfg, out, cache, command, sts_dev
        self.rank_data, self.device, self.glue_data = rank_data, device, glue_data
        self.timings: dict[str, float] = {}
        self.stages = Stages(cfg, cache, resume=resume, timings=self.timings, device=device)
        self.teacher = self.stages.teacher
        self.evaluator = Evaluator(
            cfg, sts_dev, rank_data=rank_data, timings=self.timings, teacher=self.teacher, glue_data=glue_data
        )

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        corpus_st, c = self.stages.corpus()
        targets_st = self.stages.targets(corpus_st, c)
        prune_cache: dict[str, StageDir] = {}
        results: dict[str, VariantResult] = {}
        shipped_parts = None
        all_variants = variants(self.cfg, teacher_vocab=teacher_vocab_size(self.teacher))
        for v in all_variants:
            pkey = input_hash(v.prune)
            if pkey not in prune_cache:
                prune_cache[pkey] = self.stages.prune(targets_st, c, v.prune)
        if self.cfg.workers > 1:
            self.stages.train_in_parallel(all_variants)
        for v in all_variants:
            prune_st = prune_cache[input_hash(v.prune)]
            train_st, student, _ = self.stages.train(v, targets_st, prune_st, c)
            results[v.name] = self.evaluator.evaluate_variant(v, train_st, prune_st, student)
            if v.name == SHIPPED:
                shipped_parts = (v, train_st, prune_st)
        assert shipped_parts is not None
        v, train_st, prune_st = shipped_parts

        t0 = time.perf_counter()
        tok = prune_st.path / "tokenizer.json"
        qwork = train_st.path / "quantize"
        qwork.mkdir(exist_ok=True)
        final, qres = modulewise(
            train_st.path / "onnx" / "model.fp32.onnx",
            qwork,
            lambda p: self.evaluator.score(p, tok, v),
            self.cfg.quantize,
            self.cfg.size_budget_bytes,
        )
        add_time(self.timings, "quantize", t0)

        teacher_sts, teacher_rank = self.evaluator.teacher_scores(self.cache)
        t0 = time.perf_counter()
        anchors = measure_anchors(
            self.cfg.anchors, self.teacher, self.cfg.size_budget_bytes, self.sts_dev, self.evaluator.dev_pairs,
            self.cache, threads=1,
        )  # fmt: skip
        shipped = self.evaluator.onnx_encoder(final, tok, v)  # one session for its CPU time and its rank figures
        shipped_ms = cpu_ms_per_sentence(shipped, latency_texts(self.evaluator.dev_pairs))
        add_time(self.timings, "anchors", t0)
        t0 = time.perf_counter()
        shipped_rank = self.evaluator.rank_result(shipped)
        add_time(self.timings, "rank-eval", t0)
        teacher_glue = self.evaluator.teacher_glue(self.cache)
        t0 = time.perf_counter()
        shipped_glue = self.evaluator.glue(shipped)
        add_time(self.timings, "glue-eval", t0)

        self.timings["total"] = round(time.perf_counter() - started, 1)
        metrics = {
            "sts_dev_spearman": qres.sts,
            "sts_dev_spearman_fp32": qres.fp32_sts,
            "teacher_sts_dev_spearman": teacher_sts,
            "sts_retention": round(qres.sts / teacher_sts, 4),
            **rank_metrics(shipped_rank, teacher_rank, self.rank_data),
            **glue_metrics(shipped_glue, teacher_glue, self.glue_data, self.cfg.glue_limit),
            "model_onnx_bytes": qres.bytes,
            "size_budget_bytes": self.cfg.size_budget_bytes,
            "params": results[SHIPPED].params,
            "ms_per_sentence": shipped_ms,
            "anchors": [a.model_dump() for a in anchors],
            "quantization": qres.model_dump(),
            "prune": prune_st.summary(),
            "ablations": {
                k: {kk: vv for kk, vv in r.model_dump().items() if kk != "history"} for k, r in results.items()
            },
            "export_check": {
                "max_abs_diff": results[SHIPPED].export_max_abs_diff,
                "min_cosine": results[SHIPPED].export_min_cosine,
            },
            "eval_data": portable_path(self.sts_dev),
            "timings_s": self.timings,
        }
        manifest = write_bundle(
            self.out,
            model_onnx=final,
            tokenizer_json=tok,
            name=self.cfg.name,
            version=self.cfg.version,
            dim=v.student.out_dim,
            max_length=v.student.max_length,
            teacher=self.teacher.name,
            build={
                "command": self.command,
                "config": self.cfg.model_dump(mode="json"),
                "corpus": corpus_st.summary(),
                "data_root": repo_relative(data_root()),
                "device": self.device,
                "student": {"params": results[SHIPPED].params, "module_bytes": results[SHIPPED].module_bytes},
            },
            metrics=metrics,
        )
        metrics["bundle_gzip_bytes"] = bundle_gzip_bytes(self.out)
        write_report(self.out, manifest.model_dump(), results, qres, teacher_sts, corpus_st.summary(), metrics)
        return metrics


def glue_metrics(student: GlueScores | None, teacher: GlueScores | None, data: Path | None, limit: int | None) -> dict:
    """Manifest fields for the GLUE frozen probes measured in the build (empty when it skipped them)."""
    if student is None or teacher is None or data is None:
        return {}
    both = compare(student, teacher)
    return {
        "glue": both.model_dump(),
        "glue_mean_retention": both.mean_retention,
        "glue_eval_data": portable_path(data),
        "glue_limit": limit,
    }


def bundle_gzip_bytes(bundle: Path) -> int:
    return len(pack_bundle(bundle))


def portable_arg(arg: str) -> str:
    """A command-line word as the manifest records it: absolute paths (also `--opt=/path`) become relative to the
    repository, so the recorded command names no machine's directories and reruns from the checkout."""
    opt, eq, value = arg.partition("=") if arg.startswith("--") else ("", "", arg)
    return f"{opt}{eq}{repo_relative(value)}" if Path(value).is_absolute() else arg


def resolve_device(choice: str) -> str:
    """`--device`: `auto` is CUDA when torch sees it, else the CPU (the reference path of the shipped bundles)."""
    import torch

    if choice == "cpu" or (choice == "auto" and not torch.cuda.is_available()):
        return "cpu"
    if not torch.cuda.is_available():
        raise ValueError(f"--device cuda: torch {torch.__version__} sees no CUDA device; use --device cpu or auto")
    return "cuda"


def with_teacher(cfg: BuildConfig) -> BuildConfig:
    """The config with its teacher checked (before hours of work), its path recorded relative to the repository,
    and the student's output width set to the teacher's: the bundle's `dim` follows the teacher."""
    if cfg.teacher.path is not None:
        path = Path(cfg.teacher.path).expanduser()
        if not path.is_dir():
            raise FileNotFoundError(f"[teacher] path {cfg.teacher.path}: no such directory")
        cfg = cfg.model_copy(update={"teacher": cfg.teacher.model_copy(update={"path": repo_relative(path)})})
    teacher = load_teacher(cfg.teacher.path)
    if cfg.student.out_dim != teacher.dim:
        cfg = cfg.model_copy(update={"student": cfg.student.model_copy(update={"out_dim": teacher.dim})})
    return cfg


def run_build(args) -> int:
    device = resolve_device(args.device)  # before anything else: a wrong flag costs nothing
    cfg = BuildConfig.from_toml(args.config)
    if args.quick:
        cfg = cfg.quick()
    if args.skip_ablations:  # the shipped variant's cache key does not depend on the ablation list
        cfg = cfg.model_copy(update={"ablations": ()})
    if args.skip_anchors:
        cfg = cfg.model_copy(update={"anchors": ()})
    out = Path(args.out)
    cache = Path(args.cache)
    if out.exists() and any(out.iterdir()) and not args.force:
        raise FileExistsError(f"{out} exists and is not empty; bundles are immutable (use a new version or --force)")
    if cfg.corpus.files:  # recorded relative to the repository: the manifest names no machine's directories
        cfg = cfg.model_copy(update={"corpus": cfg.corpus.model_copy(update={"files": record_paths(cfg.corpus.files)})})
    cfg = with_teacher(cfg)
    command = "eibert " + " ".join(shlex.quote(portable_arg(a)) for a in args.argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s", stream=sys.stderr)
    log.setLevel(logging.INFO)
    sts_dev = Path(args.sts_data) if args.sts_data else data_file("stsb", "sts-dev.csv.gz")
    rank_data = None  # an explicit --rank-data wins; else the config decides (the quick preset skips it)
    if args.rank_data:
        rank_data = Path(args.rank_data)
    elif cfg.rank_eval:
        rank_data = data_file("movielens")
    missing = [n for n in RANK_FILES if rank_data and not (rank_data / n).is_file()]
    if missing:  # fail before hours of training, not after
        raise FileNotFoundError(f"--rank-data {rank_data}: no {', '.join(missing)}")
    glue_data = Path(args.glue_data) if args.glue_data else data_file("glue")
    missing = [str(f.relative_to(glue_data)) for f in glue_dir_files(glue_data) if not f.is_file()]
    if missing:
        raise FileNotFoundError(f"--glue-data {glue_data}: no {', '.join(missing)}")
    builder = Builder(
        cfg, out, cache, command, sts_dev, resume=args.resume, rank_data=rank_data, device=device, glue_data=glue_data
    )
    metrics = builder.run()
    keys = (
        "sts_dev_spearman",
        "teacher_sts_dev_spearman",
        "sts_retention",
        "rank_ndcg_retention",
        "glue_mean_retention",
    )
    summary = {k: metrics[k] for k in keys if k in metrics}
    print(json.dumps({"bundle": str(out), **summary, "model_onnx_bytes": metrics["model_onnx_bytes"]}))
    return 0
