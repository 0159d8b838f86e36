"""The alternatives a user would try first, measured in the build beside the student, from the same teacher.

- `model2vec`: the Model2Vec library's own `distill` (static token vectors from the teacher, PCA, SIF weights),
  run offline on the teacher's directory, with PCA to the widest dimension whose int8 table fits the byte budget.
- `int8_teacher`: the teacher exported to ONNX and quantized with `onnxruntime.quantization.quantize_dynamic`
  (int8 per channel, every MatMul and Gather): "just quantize the teacher".

Each row gets its bytes, STS-B dev and CPU milliseconds per sentence, measured the same way as the shipped
student's row: one thread, batches of 32, the same dev sentences. Rows are cached by teacher, data and budget:
a rebuild that changes only training never distils Model2Vec again.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from model_store.data.stsb import StsPair
from model_store.encoders import Encoder
from model_store.eval_sts import evaluate_sts
from model_store.stage_cache import StageDir, input_hash
from model_store.teacher import Teacher
from service.common.manifest import sha256_file

log = logging.getLogger("eibert.build")

ANCHORS = ("model2vec", "int8_teacher")
LATENCY_SENTENCES = 512  # dev sentences timed per row (the first, sorted: the same set for every row)
LATENCY_BATCH = 32
MODEL2VEC_UNUSED = r"\[unused\d+\]"  # Model2Vec's default: BERT's placeholder tokens get no row


class AnchorResult(BaseModel):
    name: str
    label: str
    bytes: int  # the model file a device would hold (tokenizer not counted, as for model.onnx)
    sts: float
    ms_per_sentence: float  # process CPU time, one thread
    detail: str


def cpu_ms_per_sentence(encoder: Encoder, texts: Sequence[str]) -> float:
    """Process CPU milliseconds per sentence over `texts` in batches of 32, after one warm-up batch: CPU time,
    not wall time, because build machines are shared."""
    encoder.encode(list(texts[:LATENCY_BATCH]), batch_size=LATENCY_BATCH)
    t0 = time.process_time()
    for start in range(0, len(texts), LATENCY_BATCH):
        encoder.encode(list(texts[start : start + LATENCY_BATCH]), batch_size=LATENCY_BATCH)
    return round(1000 * (time.process_time() - t0) / max(1, len(texts)), 4)


def latency_texts(pairs: list[StsPair]) -> list[str]:
    return sorted({p.sentence1 for p in pairs})[:LATENCY_SENTENCES]


class StaticEncoder:
    """A Model2Vec `StaticModel` behind the `Encoder` interface (unit rows, like every other row)."""

    def __init__(self, model) -> None:
        self.model = model
        self.name = "model2vec"
        self.dim = int(model.dim)

    def encode(self, texts: Sequence[str], batch_size: int = LATENCY_BATCH) -> np.ndarray:
        emb = self.model.encode(list(texts), batch_size=batch_size, use_multiprocessing=False)
        emb = np.asarray(emb, dtype=np.float32)
        return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def model2vec_dims(teacher: Teacher, budget: int) -> tuple[int, int]:
    """(rows, PCA width): Model2Vec keeps one int8 row per teacher token except BERT's [unused] placeholders."""
    import json

    vocab = json.loads(teacher.tokenizer.read_text())["model"]["vocab"]
    rows = sum(1 for token in vocab if not re.fullmatch(MODEL2VEC_UNUSED, token))
    return rows, max(1, min(teacher.dim, budget // rows))


def model2vec_anchor(teacher: Teacher, budget: int, pairs: list[StsPair], work: Path, threads: int) -> AnchorResult:
    import os

    import torch
    from model2vec import StaticModel
    from model2vec.distill import distill

    os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a local directory only: nothing is ever downloaded
    torch.set_num_threads(threads)
    rows, dims = model2vec_dims(teacher, budget)
    out = work / "model2vec"
    if not (out / "model.safetensors").is_file():
        log.info("model2vec: distilling %s to %d x %d int8", teacher.name, rows, dims)
        model = distill(
            str(teacher.dir), pca_dims=dims, quantize_to="int8", device="cpu", token_remove_pattern=MODEL2VEC_UNUSED
        )
        model.save_pretrained(str(out))
    encoder = StaticEncoder(StaticModel.from_pretrained(str(out), force_download=False))
    return AnchorResult(
        name="model2vec",
        label=f"Model2Vec distill (library), PCA {dims}, int8",
        bytes=(out / "model.safetensors").stat().st_size,
        sts=evaluate_sts(encoder, pairs).spearman,
        ms_per_sentence=cpu_ms_per_sentence(encoder, latency_texts(pairs)),
        detail=f"{rows:,} token rows x {dims} dims",
    )


def int8_teacher_anchor(teacher: Teacher, pairs: list[StsPair], work: Path) -> list[AnchorResult]:
    """The teacher's ONNX export as it is (fp32) and quantized to int8: both through the edge runtime."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    from model_store.teacher import export_teacher_bundle
    from service.edge.encoder import OnnxEncoder

    fp32_dir = export_teacher_bundle(work / "teacher-fp32", teacher=teacher)
    int8_dir = work / "teacher-int8"
    int8_dir.mkdir(exist_ok=True)
    if not (int8_dir / "manifest.json").is_file():
        from model_store.build_evaluation import throwaway_bundle

        int8 = int8_dir / "model.int8.onnx"
        quantize_dynamic(
            str(fp32_dir / "model.onnx"), str(int8),
            weight_type=QuantType.QInt8, per_channel=True, op_types_to_quantize=["MatMul", "Gather"],
        )  # fmt: skip
        throwaway_bundle(
            int8_dir, int8, teacher.tokenizer, name="teacher-int8", dim=teacher.dim, max_length=teacher.max_length
        )
    rows = []
    for name, label, d in (
        ("teacher_fp32_onnx", "teacher fp32 (ONNX, onnxruntime)", fp32_dir),
        ("int8_teacher", "teacher int8 (onnxruntime.quantization, dynamic, per channel)", int8_dir),
    ):
        encoder = OnnxEncoder(d, threads=1)
        model_file = next(d.glob("*.onnx"))
        rows.append(
            AnchorResult(
                name=name,
                label=label,
                bytes=model_file.stat().st_size,
                sts=evaluate_sts(encoder, pairs).spearman,
                ms_per_sentence=cpu_ms_per_sentence(encoder, latency_texts(pairs)),
                detail=f"{teacher.name}, max {teacher.max_length} tokens",
            )
        )
    return rows


def measure_anchors(
    names: Sequence[str], teacher: Teacher, budget: int, sts_dev: Path, pairs: list[StsPair], cache: Path, threads: int
) -> list[AnchorResult]:
    """Every configured anchor, cached by teacher, evaluation data and budget."""
    unknown = sorted(set(names) - set(ANCHORS))
    if unknown:
        raise ValueError(f"unknown anchors {unknown}; known: {', '.join(ANCHORS)}")
    if not names:
        return []
    key = input_hash(teacher.name, teacher.version_key(), *teacher.key(), sha256_file(sts_dev), budget, sorted(names))
    st = StageDir(cache, "anchors", key)
    if st.done:
        return [AnchorResult.model_validate(r) for r in st.summary()["rows"]]
    rows: list[AnchorResult] = []
    if "int8_teacher" in names:
        rows += int8_teacher_anchor(teacher, pairs, st.path)
    if "model2vec" in names:
        rows.append(model2vec_anchor(teacher, budget, pairs, st.path, threads))
    st.finish({"rows": [r.model_dump() for r in rows]})
    return rows
