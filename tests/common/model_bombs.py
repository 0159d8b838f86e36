"""Hostile ONNX graphs, built at test time with `onnx.helper` (nothing large is committed).

Both honour the contract's names (inputs `input_ids`, `attention_mask`, output `sentence_embedding` of shape
(batch, dim)), so only their cost gives them away.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import onnx
from onnx import TensorProto, helper

from loadtests.stand_in import contract_model
from service.common.manifest import file_entry


def _embedding_of(value: str, dim: int) -> list[onnx.NodeProto]:
    """Nodes broadcasting a (1, 1) tensor named `value` to `sentence_embedding` (batch, dim)."""
    return [
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.INT64, [1], [0])),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("o", TensorProto.INT64, [1], [1])),
        helper.make_node("Slice", ["ids_shape", "zero", "one"], ["batch"]),
        helper.make_node("Constant", [], ["dim"], value=helper.make_tensor("d", TensorProto.INT64, [1], [dim])),
        helper.make_node("Concat", ["batch", "dim"], ["out_shape"], axis=0),
        helper.make_node("Expand", [value, "out_shape"], ["sentence_embedding"]),
    ]


def _model(nodes: list[onnx.NodeProto], dim: int) -> onnx.ModelProto:
    return contract_model(nodes, dim, name="bomb")


def memory_bomb(path: Path, dim: int, elements: int = 500_000_000, fill: float = 1.0) -> Path:
    """ConstantOfShape of `elements` floats (2 GB by default) of `fill`, summed to one number: a few hundred
    bytes on disk, gigabytes when onnxruntime folds or runs it, and the same vector for every text."""
    nodes = [
        helper.make_node(
            "Constant", [], ["big_shape"], value=helper.make_tensor("s", TensorProto.INT64, [2], [1, elements])
        ),
        helper.make_node(
            "ConstantOfShape", ["big_shape"], ["big"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [fill])
        ),
        helper.make_node("ReduceSum", ["big"], ["total"], keepdims=1),
        *_embedding_of("total", dim),
    ]
    onnx.save(_model(nodes, dim), str(path))
    return path


def loop_bomb(path: Path, dim: int, iterations: int = 2_000_000_000) -> Path:
    """A `Loop` of `iterations` trips adding 1 to a scalar: tiny on disk, minutes (or hours) to run."""
    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["acc_in", "acc_in"], ["acc_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_in", TensorProto.FLOAT, [1, 1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("acc_out", TensorProto.FLOAT, [1, 1]),
        ],
    )
    nodes = [
        helper.make_node("Constant", [], ["trips"], value=helper.make_tensor("t", TensorProto.INT64, [], [iterations])),
        helper.make_node("Constant", [], ["cond"], value=helper.make_tensor("c", TensorProto.BOOL, [], [True])),
        helper.make_node("Constant", [], ["acc"], value=helper.make_tensor("a", TensorProto.FLOAT, [1, 1], [0.0])),
        helper.make_node("Loop", ["trips", "cond", "acc"], ["looped"], body=body),
        *_embedding_of("looped", dim),
    ]
    onnx.save(_model(nodes, dim), str(path))
    return path


def bundle_with_model(src: Path, dst: Path, write_model: Callable[[Path], object], **manifest: object) -> Path:
    """A copy of bundle `src` whose model.onnx is written by `write_model(path)`, with the manifest's hashes
    redone (so the bundle verifies and only admission can refuse it) and `manifest` fields overridden."""
    dst.mkdir(parents=True)
    shutil.copy(src / "tokenizer.json", dst / "tokenizer.json")
    write_model(dst / "model.onnx")
    raw = json.loads((src / "manifest.json").read_text())
    raw.update(manifest)
    raw["files"] = {name: file_entry(dst / name).model_dump() for name in ("model.onnx", "tokenizer.json")}
    (dst / "manifest.json").write_text(json.dumps(raw))
    return dst
