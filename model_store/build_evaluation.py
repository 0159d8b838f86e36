"""Evaluating the build's variants as devices run them: ONNX export (checked against PyTorch), int8, and STS-B
dev, GLUE frozen-probe (and optionally MovieLens rank) scores through the edge runtime, so the report measures what
ships. Recipes are picked on STS-B dev and GLUE dev together: each variant's row carries both.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch
from pydantic import BaseModel

from model_store.build_config import BuildConfig
from model_store.build_stages import add_time, tokenize
from model_store.build_variants import Variant
from model_store.data import load_sts
from model_store.data.paths import portable_path
from model_store.distill import pad
from model_store.encoders import Encoder
from model_store.eval_glue import GlueScores, evaluate_glue, glue_dir_files
from model_store.eval_rank import RankEvalResult, TopKMetrics, evaluate_rank
from model_store.eval_sts import evaluate_sts
from model_store.export import export_onnx
from model_store.quantize import GROUPS, quantize_groups
from model_store.stage_cache import StageDir, input_hash
from model_store.student import Student, module_bytes
from model_store.teacher import Teacher, TeacherEncoder, load_teacher
from service.common.manifest import sha256_file, write_bundle
from service.edge.encoder import OnnxEncoder

EXPORT_CHECK_SENTENCES = 256
RANK_FILES = ("movies.csv.gz", "ratings.csv.gz", "tags.csv.gz")  # `--rank-data`: the shared data's layout


class VariantResult(BaseModel):
    name: str
    params: int
    vocab: int
    embed_dim: int
    est_int8_bytes: int
    fp32_bytes: int
    int8_bytes: int
    sts_init: float  # before training (parameter integration alone)
    sts_fp32: float
    sts_int8: float
    module_bytes: dict[str, int]
    history: list[dict[str, float]]
    export_max_abs_diff: float
    export_min_cosine: float
    train_seconds: float
    steps_run: int | None = None  # None: a run cached before the build recorded it
    early_stop: dict | None = None  # `early_stop.EarlyStopState` of the run (best step, where it stopped)
    glue: GlueScores | None = None  # GLUE frozen probes on the int8 model (None when the build skips them)
    rank: TopKMetrics | None = None  # MovieLens ranker on the int8 model (None when the build skips rank eval)


def throwaway_bundle(d: Path, model: Path, tokenizer: Path, *, name: str, dim: int, max_length: int) -> Path:
    """A bundle folder around a candidate graph, so that it loads through the edge runtime like a real one."""
    write_bundle(
        d, model_onnx=model, tokenizer_json=tokenizer, name=name, version="0",
        dim=dim, max_length=max_length, teacher="", build={},
    )  # fmt: skip
    return d


class Evaluator:
    """Scores graphs on STS-B dev (`sts_dev`) and, given `rank_data`, on the MovieLens ranker."""

    def __init__(
        self,
        cfg: BuildConfig,
        sts_dev: Path,
        *,
        rank_data: Path | None,
        timings: dict[str, float],
        teacher: Teacher | None = None,
        glue_data: Path | None = None,
    ) -> None:
        self.cfg, self.timings = cfg, timings
        self.glue_data = glue_data  # GLUE directory for the frozen probes; None = no GLUE evaluation
        self.teacher = teacher or load_teacher(cfg.teacher.path)
        self.rank_data = rank_data  # MovieLens directory (movies, ratings, tags); None = no rank evaluation
        self.sts_dev = sts_dev
        self.dev_pairs = load_sts(sts_dev)

    @property
    def teacher_threads(self) -> int:
        """Threads for the teacher's own scores. They run after the trainings, when the build runs nothing else, so
        they may use every core the workers had (`distill.threads` is 1 because trainings share the cores)."""
        return max(self.cfg.workers, self.cfg.distill.threads)

    def teacher_scores(self, cache: Path) -> tuple[float, RankEvalResult | None]:
        """The teacher's STS-B dev score and ranker result, cached by the bytes of the evaluation data and the
        teacher's version (its wheel's, or your directory's content digest): the teacher is fixed, so a rerun (or
        the other config, on the same data) never encodes the dev set and the catalogue with it again."""
        files = [self.sts_dev]
        if self.rank_data is not None:
            files += [self.rank_data / name for name in RANK_FILES]
        key = input_hash(self.teacher.name, self.teacher.version_key(), [sha256_file(f) for f in files])
        st = StageDir(cache, "teacher-eval", key)
        if st.done:
            saved = st.summary()
            return saved["sts"], RankEvalResult.model_validate(saved["rank"]) if saved["rank"] else None
        t0 = time.perf_counter()
        teacher = TeacherEncoder(threads=self.teacher_threads, teacher=self.teacher)
        sts, rank = self.sts(teacher), self.rank_result(teacher)
        st.finish({"sts": sts, "rank": rank.model_dump() if rank else None})
        add_time(self.timings, "teacher-eval", t0)
        return sts, rank

    def teacher_glue(self, cache: Path) -> GlueScores | None:
        """The teacher's GLUE probe scores, cached like `teacher_scores` (by the data's bytes, the row limit and the
        teacher's version): encoding ~42k GLUE sentences with the teacher is the probes' only slow part."""
        if self.glue_data is None:
            return None
        files = [sha256_file(f) for f in glue_dir_files(self.glue_data) if f.is_file()]
        key = input_hash(self.teacher.name, self.teacher.version_key(), files, self.cfg.glue_limit)
        st = StageDir(cache, "teacher-glue", key)
        if st.done:
            return GlueScores.model_validate(st.summary())
        t0 = time.perf_counter()
        scores = self.glue(TeacherEncoder(threads=self.teacher_threads, teacher=self.teacher))
        assert scores is not None
        st.finish(scores.model_dump())
        add_time(self.timings, "teacher-glue", t0)
        return scores

    def glue(self, encoder: Encoder) -> GlueScores | None:
        """`eibert eval glue` on `glue_data` (its rows capped at `glue_limit` in quick builds)."""
        if self.glue_data is None:
            return None
        return evaluate_glue(encoder, self.glue_data, limit=self.cfg.glue_limit)

    def onnx_encoder(self, model_path: Path, tokenizer: Path, v: Variant) -> OnnxEncoder:
        """An ONNX graph behind the edge runtime, as devices run it (a throwaway bundle around it)."""
        d = throwaway_bundle(
            model_path.parent / f"bundle-{model_path.stem}", model_path, tokenizer,
            name="candidate", dim=v.student.out_dim, max_length=v.student.max_length,
        )  # fmt: skip
        return OnnxEncoder(d, threads=self.cfg.distill.threads)

    def score(self, model_path: Path, tokenizer: Path, v: Variant) -> float:
        """STS-B dev Spearman of an ONNX graph through the edge runtime."""
        return self.sts(self.onnx_encoder(model_path, tokenizer, v))

    def sts(self, encoder: Encoder) -> float:
        return evaluate_sts(encoder, self.dev_pairs).spearman

    def rank_result(self, encoder: Encoder) -> RankEvalResult | None:
        """`eibert eval rank` on `--rank-data` (the shared data's layout: movies/ratings/tags.csv.gz)."""
        if self.rank_data is None:
            return None
        return evaluate_rank(encoder, *(self.rank_data / name for name in RANK_FILES))

    def export_check(self, student: Student, fp32: Path, tokenizer: Path) -> tuple[float, float]:
        """Max |difference| and min cosine between PyTorch and onnxruntime on 256 dev sentences."""
        texts = sorted({p.sentence1 for p in self.dev_pairs})[:EXPORT_CHECK_SENTENCES]
        ids = tokenize(tokenizer, texts, student.cfg.max_length)
        with torch.no_grad():
            ref = np.vstack([student(*pad([x])).numpy() for x in ids])
        d = throwaway_bundle(
            fp32.parent / "bundle-export-check", fp32, tokenizer,
            name="check", dim=student.cfg.out_dim, max_length=student.cfg.max_length,
        )  # fmt: skip
        got = OnnxEncoder(d).encode(texts, batch_size=32)
        return float(np.abs(got - ref).max()), float((got * ref).sum(axis=1).min())

    def evaluate_variant(self, v: Variant, train_st: StageDir, prune_st: StageDir, student: Student) -> VariantResult:
        """Export, check, quantize and score one trained variant (and its untrained initialisation)."""
        t0 = time.perf_counter()
        tokenizer = prune_st.path / "tokenizer.json"
        work = train_st.path / "onnx"
        work.mkdir(exist_ok=True)
        fp32 = export_onnx(student, work / "model.fp32.onnx", vocab_size=student.vocab_size)
        diff, cos = self.export_check(student, fp32, tokenizer)
        int8 = quantize_groups(fp32, work / "model.int8.onnx", list(GROUPS), self.cfg.quantize)
        int8_encoder = self.onnx_encoder(int8, tokenizer, v)  # one session, both scores
        init = Student(v.student, student.vocab_size)
        init.load_state_dict(torch.load(train_st.path / "init.pt"))
        init_onnx = export_onnx(init.eval(), work / "model.init.onnx", vocab_size=student.vocab_size)
        history = json.loads((train_st.path / "history.json").read_text())
        summary = train_st.summary()
        result = VariantResult(
            name=v.name,
            params=student.num_params(),
            vocab=student.vocab_size,
            embed_dim=v.student.embed_dim,
            est_int8_bytes=student.estimated_int8_bytes(),
            fp32_bytes=fp32.stat().st_size,
            int8_bytes=int8.stat().st_size,
            sts_init=self.score(init_onnx, tokenizer, v),
            sts_fp32=self.score(fp32, tokenizer, v),
            sts_int8=self.sts(int8_encoder),
            rank=r.ranker if (r := self.rank_result(int8_encoder)) else None,
            glue=self.glue(int8_encoder),
            module_bytes=module_bytes(student),
            history=history,
            export_max_abs_diff=diff,
            export_min_cosine=cos,
            train_seconds=summary.get("train_seconds", 0.0),
            steps_run=summary.get("steps_run"),
            early_stop=summary.get("early_stop"),
        )
        add_time(self.timings, f"evaluate:{v.name}", t0)
        return result


def rank_metrics(student: RankEvalResult | None, teacher: RankEvalResult | None, data: Path | None) -> dict:
    """Manifest fields for `eibert eval rank` figures measured in the build (empty when it skipped them)."""
    if student is None or teacher is None:
        return {}
    return {
        "rank": student.to_json_dict(),
        "teacher_rank": teacher.to_json_dict(),
        "rank_ndcg_retention": round(student.ranker.ndcg / teacher.ranker.ndcg, 4) if teacher.ranker.ndcg else None,
        "rank_eval_data": portable_path(data) if data else None,
    }
