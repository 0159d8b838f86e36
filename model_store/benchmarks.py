"""The model's `eibert bench` sections (teacher, shipped bundle); the HTTP services' sections live in
`loadtests/`, and `eibert bench` itself (`eibert/bench.py`) assembles both parts' `BENCH_SECTIONS`.

Every figure is measured in the run that writes it; speed targets are ratios against a baseline measured in
the same run (wall-clock numbers from different runs or machines are not comparable).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from model_store.data.paths import repo_relative
from model_store.data.stsb import load_sts
from model_store.encoders import Encoder
from model_store.eval_sts import evaluate_sts
from service.devstack.bench_file import machine_line
from service.devstack.timing import WARMUP, Latency, time_call

SINGLE_REPEATS = 200
BATCH_REPEATS = 20
BATCH_SIZE = 32


def short_text(encoder_tokenize: Callable[[str], int], sentences: list[str], tokens: int = 16) -> str:
    """A real STS sentence of exactly `tokens` tokens (with [CLS]/[SEP]), so runs compare like for like."""
    for s in sentences:
        if encoder_tokenize(s) == tokens:
            return s
    raise ValueError(f"no sentence of {tokens} tokens in the benchmark data")


def encoder_latency(encoder: Encoder, single: str, batch: list[str]) -> tuple[Latency, Latency]:
    one = time_call(lambda: encoder.encode([single]), SINGLE_REPEATS)
    many = time_call(lambda: encoder.encode(batch, batch_size=len(batch)), BATCH_REPEATS)
    return one, many


def _pp(lat: Latency) -> str:
    return f"{lat.p50_ms:.2f} / {lat.p90_ms:.2f}"


def _speedup(base: Latency, new: Latency) -> str:
    return f"{base.p50_ms / new.p50_ms:.1f}x faster (p50)"


def bench_teacher(sts_path: Path, cache_dir: Path, command: str) -> str:
    """Teacher figures: STS-B Spearman, size, and encode latency in PyTorch and in fp32 onnxruntime, 1 thread."""
    from model_store.teacher import TeacherEncoder, export_teacher_bundle
    from service.edge.encoder import OnnxEncoder

    pairs = load_sts(sts_path)
    teacher = TeacherEncoder(threads=1)
    facts = teacher.facts()
    sts = evaluate_sts(teacher, pairs)
    bundle = export_teacher_bundle(cache_dir / "teacher-onnx-fp32", teacher)
    onnx_teacher = OnnxEncoder(bundle, threads=1)
    onnx_sts = evaluate_sts(onnx_teacher, pairs)

    sentences = sorted({p.sentence1 for p in pairs})
    single = short_text(lambda s: len(teacher.tokenizer.encode(s).ids), sentences)
    batch = sentences[:BATCH_SIZE]
    t_one, t_batch = encoder_latency(teacher, single, batch)
    o_one, o_batch = encoder_latency(onnx_teacher, single, batch)
    onnx_bytes = (bundle / "model.onnx").stat().st_size
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""
## Teacher: all-MiniLM-L6-v2 (fp32)

`{command}` on {now}; {machine_line()}; data `{sts_path.name}` ({sts.pairs} pairs).

| figure | PyTorch fp32 | onnxruntime fp32 (exported bundle) |
|---|---|---|
| STS-B Spearman x100 | {sts.spearman:.2f} | {onnx_sts.spearman:.2f} |
| parameters | {facts.params:,} | same weights |
| bytes on disk | {facts.weight_bytes:,} (model.safetensors) | {onnx_bytes:,} (model.onnx) |
| encode 1 text of 16 tokens, 1 thread, p50 / p90 ms | {_pp(t_one)} | {_pp(o_one)} |
| encode batch of {BATCH_SIZE}, 1 thread, p50 / p90 ms | {_pp(t_batch)} | {_pp(o_batch)} |

Single text: "{single}". Batch: the first {BATCH_SIZE} distinct dev sentences in sorted order.
Latency runs: {t_one.runs} single, {t_batch.runs} batch, after {WARMUP} warm-up calls each.
"""


def bench_model(bundle: Path, sts_path: Path, cache_dir: Path, command: str) -> str:
    """The shipped bundle against the teacher's fp32 ONNX export, same runtime, same text, same run."""
    from model_store.teacher import TeacherEncoder, export_teacher_bundle
    from service.common.archive import pack_bundle
    from service.edge.encoder import OnnxEncoder

    pairs = load_sts(sts_path)
    teacher_bundle = export_teacher_bundle(cache_dir / "teacher-onnx-fp32", TeacherEncoder(threads=1))
    student = OnnxEncoder(bundle, threads=1)
    teacher = OnnxEncoder(teacher_bundle, threads=1)
    sentences = sorted({p.sentence1 for p in pairs})
    single = short_text(lambda s: len(teacher.tokenizer.encode(s).ids), sentences)
    batch = sentences[:BATCH_SIZE]
    s_one, s_batch = encoder_latency(student, single, batch)
    t_one, t_batch = encoder_latency(teacher, single, batch)
    s_sts = evaluate_sts(student, pairs).spearman
    t_sts = evaluate_sts(teacher, pairs).spearman
    s_bytes = (bundle / "model.onnx").stat().st_size
    t_bytes = (teacher_bundle / "model.onnx").stat().st_size
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"""
## Shipped bundle vs teacher (onnxruntime, 1 thread)

`{command}` on {now}; {machine_line()}; bundle `{repo_relative(bundle)}`; data `{sts_path.name}` ({len(pairs)} pairs).

| figure | student `{student.name}` | teacher fp32 ONNX | ratio |
|---|---|---|---|
| STS-B Spearman x100 | {s_sts:.2f} | {t_sts:.2f} | {100 * s_sts / t_sts:.1f}% retained |
| model.onnx bytes | {s_bytes:,} | {t_bytes:,} | {t_bytes / s_bytes:.1f}x smaller |
| bundle gzip bytes (transport) | {len(pack_bundle(bundle)):,} | {len(pack_bundle(teacher_bundle)):,} | |
| encode 1 text of 16 tokens, p50 / p90 ms | {_pp(s_one)} | {_pp(t_one)} | {_speedup(t_one, s_one)} |
| encode batch of {BATCH_SIZE}, p50 / p90 ms | {_pp(s_batch)} | {_pp(t_batch)} | {_speedup(t_batch, s_batch)} |

Single text: "{single}". Target: >= 10x faster than the teacher's fp32 ONNX on the single text.
"""
