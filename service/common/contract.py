"""The ONNX contract between the pipeline that exports a bundle and every runtime that loads one.

Defined once here so that `model_store` (export) and `service/edge` (inference) cannot drift apart: the graph
takes token ids and an attention mask and returns one L2-normalised sentence embedding per row.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from service.common.errors import BundleError

INPUT_IDS = "input_ids"  # int64 (batch, seq)
ATTENTION_MASK = "attention_mask"  # int64 (batch, seq), 1 for real tokens
SENTENCE_EMBEDDING = "sentence_embedding"  # float32 (batch, dim)

ONNX_INPUTS = (INPUT_IDS, ATTENTION_MASK)
ONNX_OUTPUTS = (SENTENCE_EMBEDDING,)

MODEL_FILE = "model.onnx"
TOKENIZER_FILE = "tokenizer.json"
MANIFEST_FILE = "manifest.json"
RANKER_FILE = "ranker.json"  # optional: the learned ranker (`service.edge.learned_ranker`); its sha256 is pinned
BUNDLE_FILES = (MODEL_FILE, TOKENIZER_FILE)  # required in every bundle
OPTIONAL_FILES = (RANKER_FILE,)

MANIFEST_SCHEMA_VERSION = 1

# What an edge node ever asks of a bundle, so that admission can try exactly that before a node serves it:
# at most MAX_RUN_ROWS texts in one onnxruntime run (`service.edge.encoder` splits larger batches), each text
# at most MAX_TEXT_CHARS characters (the edge's request schemas refuse longer ones).
MAX_RUN_ROWS = 64
MAX_TEXT_CHARS = 2000


def check_contract(inputs: Iterable[str], outputs: Iterable[str], *, where: str) -> None:
    """Raise BundleError unless a graph takes exactly the contract's inputs and returns its embedding.

    The one check of the names, for every reader of a graph: admission reads them from the ONNX file (`onnx`,
    nothing executes), the edge's encoder from the onnxruntime session it opened."""
    inputs, outputs = sorted(inputs), list(outputs)
    if inputs != sorted(ONNX_INPUTS) or SENTENCE_EMBEDDING not in outputs:
        raise BundleError(
            f"{where} has inputs {inputs} and outputs {outputs}; the contract needs inputs "
            f"{sorted(ONNX_INPUTS)} and output {SENTENCE_EMBEDDING!r}"
        )


def run_contract(session: Any, input_ids: Any, attention_mask: Any) -> Any:
    """One onnxruntime run by the contract's names: (batch, seq) int64 ids and mask in, (batch, dim) out."""
    (embedding,) = session.run([SENTENCE_EMBEDDING], {INPUT_IDS: input_ids, ATTENTION_MASK: attention_mask})
    return embedding
