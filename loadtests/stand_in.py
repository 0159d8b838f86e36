"""ONNX graphs that honour the model contract (inputs `input_ids` and `attention_mask`, output
`sentence_embedding` of shape (batch, dim)) built with `onnx.helper`, and the cloud benchmark's stand-in bundle.

`contract_model` is the one builder: the stand-in bundle wraps a cheap embedding in it, the tests' hostile
graphs (`tests/common/model_bombs.py`) wrap their bombs in it, so both pass the same name and shape checks.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from tokenizers import Tokenizer

from model_store.shipped import SHIPPED_BUNDLE
from service.common.contract import TOKENIZER_FILE
from service.common.manifest import write_bundle

OPSET = 17
IR_VERSION = 8
STAND_IN_DIM = 8


def contract_model(
    nodes: Sequence[onnx.NodeProto],
    dim: int,
    *,
    name: str = "contract",
    initializer: Sequence[onnx.TensorProto] = (),
) -> onnx.ModelProto:
    """A model whose graph `nodes` read the contract's inputs and write `sentence_embedding` (batch, dim)."""
    graph = helper.make_graph(
        list(nodes),
        name,
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim])],
        initializer=list(initializer),
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION)


def stand_in_bundle(out: Path, version: str = "1.0.0") -> Path:
    """A minimal contract-conforming bundle (embedding lookup + sum + L2 norm, dim 8) with the shipped bundle's
    tokenizer: the cloud's figures do not depend on the model, and this keeps the benchmark free of torch and
    of the build pipeline."""
    tokenizer_json = SHIPPED_BUNDLE / TOKENIZER_FILE
    vocab = Tokenizer.from_file(str(tokenizer_json)).get_vocab_size()  # every id it emits indexes the table
    table = np.random.default_rng(0).standard_normal((vocab, STAND_IN_DIM)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axes2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axes1"], ["summed"], keepdims=0),
        # L2 norm as the shipped bundles write it (ReduceL2 + Div): only allow-listed operators pass admission
        helper.make_node("ReduceL2", ["summed"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Div", ["summed", "norm"], ["sentence_embedding"]),
    ]
    initializer = [
        numpy_helper.from_array(table, "table"),
        numpy_helper.from_array(np.array([2], dtype=np.int64), "axes2"),
        numpy_helper.from_array(np.array([1], dtype=np.int64), "axes1"),
    ]
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(contract_model(nodes, STAND_IN_DIM, name="stand-in", initializer=initializer), out / "model.onnx")
    write_bundle(
        out,
        model_onnx=out / "model.onnx",
        tokenizer_json=tokenizer_json,
        name="bench",
        version=version,
        dim=STAND_IN_DIM,
        max_length=128,
        teacher="none (benchmark stand-in)",
        build={"command": "loadtests/bench_cloud.py"},
    )
    return out
