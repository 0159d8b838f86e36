"""Module-wise int8 post-training quantization with `onnxruntime.quantization.quantize_dynamic`.

Each module group (embeddings, attention, FFN, head) is quantized alone first to measure its quality cost
(the sensitivity table); the shipped graph quantizes every group whose cost is within `max_drop` STS points,
and keeps a costlier group in fp32 only if the model still fits the byte budget.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import onnx
from onnxruntime.quantization import QuantType, quantize_dynamic
from pydantic import BaseModel

from model_store.build_config import QuantizeConfig

GROUPS = ("embeddings", "attention", "ffn", "head")
QUANTIZABLE = ("MatMul", "Gemm", "Gather")


class ModuleSensitivity(BaseModel):
    group: str
    nodes: int
    bytes: int  # model.onnx with only this group in int8
    sts: float
    drop: float  # fp32 STS minus this


class QuantizeResult(BaseModel):
    fp32_bytes: int
    fp32_sts: float
    table: list[ModuleSensitivity]
    int8_groups: list[str]
    kept_fp32: list[str]
    bytes: int
    sts: float


def group_of(node_name: str) -> str | None:
    if any(p in node_name for p in ("/tok/", "/proj/", "/pos/")):
        return "embeddings"
    if "/attn/" in node_name:
        return "attention"
    if "/ffn/" in node_name:
        return "ffn"
    if "/head/" in node_name:
        return "head"
    return None


def nodes_by_group(model_path: Path) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {g: [] for g in GROUPS}
    for node in onnx.load(str(model_path)).graph.node:
        g = group_of(node.name)
        if g is not None and node.op_type in QUANTIZABLE:
            groups[g].append(node.name)
            if node.op_type == "Gemm":  # onnxruntime rewrites Gemm to MatMul + Add under this name first
                groups[g].append(f"{node.name}_MatMul")
    return groups


def quantize_groups(fp32: Path, out: Path, groups: list[str], cfg: QuantizeConfig) -> Path:
    nodes = nodes_by_group(fp32)
    selected = [n for g in groups for n in nodes[g]]
    quantize_dynamic(
        str(fp32),
        str(out),
        weight_type=QuantType.QInt8,
        per_channel=cfg.per_channel,
        nodes_to_quantize=selected,
        op_types_to_quantize=list(QUANTIZABLE),
    )
    return out


def modulewise(
    fp32: Path, work: Path, score: Callable[[Path], float], cfg: QuantizeConfig, budget: int
) -> tuple[Path, QuantizeResult]:
    """Measure each group alone, then build the shipped mix; `score(model.onnx) -> STS` runs the real runtime."""
    base = score(fp32)
    nodes = nodes_by_group(fp32)
    table = []
    for g in GROUPS:
        if not nodes[g]:
            continue
        path = quantize_groups(fp32, work / f"only-{g}.onnx", [g], cfg)
        sts = score(path)
        table.append(
            ModuleSensitivity(group=g, nodes=len(nodes[g]), bytes=path.stat().st_size, sts=sts, drop=base - sts)
        )
    present = [row.group for row in table]
    costly = sorted((row for row in table if row.drop > cfg.max_drop), key=lambda r: -r.drop)
    int8 = list(present)
    final = quantize_groups(fp32, work / "int8-all.onnx", int8, cfg)
    for row in costly:  # try to give the costliest groups back their fp32 weights, while bytes allow
        trial_groups = [g for g in int8 if g != row.group]
        trial = quantize_groups(fp32, work / f"int8-without-{row.group}.onnx", trial_groups, cfg)
        if trial.stat().st_size <= budget:
            int8, final = trial_groups, trial
    return final, QuantizeResult(
        fp32_bytes=fp32.stat().st_size,
        fp32_sts=base,
        table=table,
        int8_groups=int8,
        kept_fp32=[g for g in present if g not in int8],
        bytes=final.stat().st_size,
        sts=score(final),
    )
