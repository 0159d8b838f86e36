"""Hostile ONNX graphs, built at test time with `onnx.helper` (nothing large is committed).

Both honour the contract's names (inputs `input_ids`, `attention_mask`, output `sentence_embedding` of shape
(batch, dim)), so only their cost gives them away.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

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


def batch_bomb(path: Path, dim: int, vocab_size: int, factor: int = 8) -> Path:
    """An honest embedding lookup (ids -> rows, summed) plus a side branch of ConstantOfShape(factor x batch^4)
    floats summed into it as 0.0: 128 floats at a batch of 2 (all the old trial ran), 537 MB at 64. Different
    texts get different vectors, so only the cost at the largest batch a node serves gives it away."""
    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((vocab_size, dim)).astype(np.float32), "table")
    nodes = [
        helper.make_node("Shape", ["input_ids"], ["ids_shape"]),
        helper.make_node("Constant", [], ["zero"], value=helper.make_tensor("z", TensorProto.INT64, [1], [0])),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("o", TensorProto.INT64, [1], [1])),
        helper.make_node("Slice", ["ids_shape", "zero", "one"], ["b"]),
        helper.make_node("Constant", [], ["k"], value=helper.make_tensor("k", TensorProto.INT64, [1], [factor])),
        helper.make_node("Concat", ["k", "b", "b", "b", "b"], ["big_shape"], axis=0),
        helper.make_node(
            "ConstantOfShape", ["big_shape"], ["big"], value=helper.make_tensor("v", TensorProto.FLOAT, [1], [0.0])
        ),
        helper.make_node("ReduceSum", ["big"], ["zero_sum"], keepdims=0),  # 0.0, at the cost of building `big`
        helper.make_node("Gather", ["table", "input_ids"], ["rows"]),  # (batch, seq, dim)
        helper.make_node("ReduceSum", ["rows", "one"], ["summed"], keepdims=0),  # (batch, dim)
        helper.make_node("Add", ["summed", "zero_sum"], ["sentence_embedding"]),
    ]
    onnx.save(contract_model(nodes, dim, name="batch-bomb", initializer=[table]), str(path))
    return path


def hostile_tokenizer(src: Path, pattern: str = "(x+x+)+y") -> dict:
    """`src`'s tokenizer.json with a `Split` pre-tokenizer on `pattern` (a regex) before its own: catastrophic
    backtracking on a long run of `x`."""
    tokenizer = json.loads(src.read_text(encoding="utf-8"))
    split = {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}
    tokenizer["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [split, tokenizer["pre_tokenizer"]]}
    return tokenizer


def bundle_with_tokenizer(src: Path, dst: Path, tokenizer: dict, **manifest: object) -> Path:
    """A copy of bundle `src` whose tokenizer.json is `tokenizer`, hashes redone (it verifies)."""
    return bundle_with_model(
        src,
        dst,
        lambda p: shutil.copy(src / "model.onnx", p),
        tokenizer=lambda p: p.write_text(json.dumps(tokenizer), encoding="utf-8"),
        **manifest,
    )


def bundle_with_model(
    src: Path,
    dst: Path,
    write_model: Callable[[Path], object],
    tokenizer: Callable[[Path], object] | None = None,
    **manifest: object,
) -> Path:
    """A copy of bundle `src` whose model.onnx is written by `write_model(path)` (and tokenizer.json by
    `tokenizer(path)`, if given), with the manifest's hashes redone (so the bundle verifies and only admission
    can refuse it) and `manifest` fields overridden."""
    dst.mkdir(parents=True)
    if tokenizer is None:
        shutil.copy(src / "tokenizer.json", dst / "tokenizer.json")
    else:
        tokenizer(dst / "tokenizer.json")
    write_model(dst / "model.onnx")
    raw = json.loads((src / "manifest.json").read_text())
    raw.update(manifest)
    raw["files"] = {name: file_entry(dst / name).model_dump() for name in ("model.onnx", "tokenizer.json")}
    (dst / "manifest.json").write_text(json.dumps(raw))
    return dst
