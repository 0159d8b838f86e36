"""The bundle runtime: HF `tokenizers` + onnxruntime, nothing else (no torch on the edge path).

`OnnxEncoder` is also what `eibert eval --bundle DIR` measures, so evaluation scores exactly what ships.
Texts are sorted by token length before batching so a batch pads to similar lengths; the order is restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from service.common.contract import (
    ATTENTION_MASK,
    INPUT_IDS,
    MODEL_FILE,
    ONNX_INPUTS,
    SENTENCE_EMBEDDING,
    TOKENIZER_FILE,
)
from service.common.errors import BundleError
from service.common.manifest import Manifest, read_manifest, verify_bundle

DEFAULT_BATCH_SIZE = 64


def l2_normalize(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    tok = Tokenizer.from_file(str(path))
    tok.enable_truncation(max_length=max_length)
    pad_id = tok.token_to_id("[PAD]")
    tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    return tok


class OnnxEncoder:
    """Encodes texts with a verified bundle; L2-normalised float32 rows of width `dim`."""

    def __init__(self, bundle_dir: str | Path, *, threads: int = 1, verify: bool = True) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest = verify_bundle(self.bundle_dir) if verify else read_manifest(self.bundle_dir)
        self.name = f"{self.manifest.name}-{self.manifest.version}"
        self.dim = self.manifest.dim
        self.max_length = self.manifest.max_length
        self.tokenizer = load_tokenizer(self.bundle_dir / TOKENIZER_FILE, self.max_length)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        try:
            self.session = ort.InferenceSession(
                str(self.bundle_dir / MODEL_FILE), sess_options=opts, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors for corrupt graphs
            raise BundleError(f"{self.bundle_dir}: onnxruntime cannot load {MODEL_FILE}: {exc}") from exc
        inputs = tuple(i.name for i in self.session.get_inputs())
        outputs = tuple(o.name for o in self.session.get_outputs())
        if set(inputs) != set(ONNX_INPUTS) or SENTENCE_EMBEDDING not in outputs:
            raise BundleError(f"{self.bundle_dir}: graph has inputs {inputs} and outputs {outputs}, not the contract")

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        lengths = np.array([sum(e.attention_mask) for e in encs])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), batch_size):
            idx = order[start : start + batch_size]
            width = int(lengths[idx].max())
            ids = np.array([encs[i].ids[:width] for i in idx], dtype=np.int64)
            mask = np.array([encs[i].attention_mask[:width] for i in idx], dtype=np.int64)
            (emb,) = self.session.run([SENTENCE_EMBEDDING], {INPUT_IDS: ids, ATTENTION_MASK: mask})
            out[idx] = emb
        return l2_normalize(out)
