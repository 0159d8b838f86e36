"""The bundle runtime: HF `tokenizers` + onnxruntime, nothing else (no torch on the edge path).

`OnnxEncoder` is also what `eibert eval --bundle DIR` measures, so evaluation scores exactly what ships.
Texts are sorted by token length and cut into runs of similar length (`length_buckets`) so a run pads little;
the input order is restored.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
from tokenizers import Tokenizer

from service.common.bounded_json import TOKENIZER_MAX_BYTES, loads_bounded, read_bounded
from service.common.contract import MAX_RUN_ROWS, MODEL_FILE, TOKENIZER_FILE, check_contract, run_contract
from service.common.errors import BundleError
from service.common.manifest import Manifest, read_manifest, verify_bundle

DEFAULT_BATCH_SIZE = MAX_RUN_ROWS  # texts per onnxruntime run, and never more: admission tried exactly that
# Short and long texts, so warm-up runs the graph at more than one sequence length before the first request.
WARMUP_TEXTS = ("warm up", "a longer sentence so that the graph also runs at a second sequence length, twice")


def l2_normalize(x: np.ndarray) -> np.ndarray:
    # (x * x).sum rather than np.linalg.norm: the same norms, without its wrapper's cost (a tenth of a model run)
    norms = np.sqrt((x * x).sum(axis=1, keepdims=True))
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def load_tokenizer(path: Path, max_length: int) -> Tokenizer:
    """The bundle's tokenizer; tokenizer.json is read once, size- and depth-checked (`bounded_json`), and the
    same bytes handed to `tokenizers`, so what was checked is what gets parsed."""
    data = read_bounded(path, max_bytes=TOKENIZER_MAX_BYTES)
    loads_bounded(data, what=str(path), max_bytes=TOKENIZER_MAX_BYTES)
    try:
        tok = Tokenizer.from_str(data.decode("utf-8"))
    except Exception as exc:  # tokenizers raises a bare Exception for any malformed file
        raise BundleError(f"{path}: not a tokenizer `tokenizers` can load: {str(exc)[:200]}") from exc
    tok.enable_truncation(max_length=max_length)
    pad_id = tok.token_to_id("[PAD]")
    tok.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
    return tok


def length_buckets(sorted_lengths: np.ndarray, order: np.ndarray, batch_size: int) -> list[np.ndarray]:
    """Split texts sorted longest first into runs: at most `batch_size` texts, and a new run whenever a text
    is shorter than half the run's first (longest) text.

    A run pads every text to its longest, and attention costs grow with the square of that width: one long
    item text among 31 short ones would otherwise make the whole micro-batch several times slower than
    encoding the texts one by one. The split bounds padding to under 2x per text.
    """
    buckets, start = [], 0
    for i in range(1, len(order) + 1):
        if i == len(order) or i - start == batch_size or 2 * sorted_lengths[i] < sorted_lengths[start]:
            buckets.append(order[start:i])
            start = i
    return buckets


class OnnxEncoder:
    """Encodes texts with a verified bundle; L2-normalised float32 rows of width `dim`."""

    def __init__(self, bundle_dir: str | Path, *, threads: int = 1, verify: bool = True) -> None:
        self.bundle_dir = Path(bundle_dir)
        self.manifest: Manifest = verify_bundle(self.bundle_dir) if verify else read_manifest(self.bundle_dir)
        self.name = self.manifest.release_id
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
        check_contract(
            (i.name for i in self.session.get_inputs()),
            (o.name for o in self.session.get_outputs()),
            where=f"{self.bundle_dir}: {MODEL_FILE}",
        )

    @property
    def model_sha256(self) -> str:
        return self.manifest.files[MODEL_FILE].sha256

    def warm_up(self) -> None:
        """Run the graph once: onnxruntime allocates and specialises lazily, which the first request would pay."""
        out = self.encode(list(WARMUP_TEXTS))
        if out.shape != (len(WARMUP_TEXTS), self.dim) or not np.isfinite(out).all():
            raise BundleError(f"{self.bundle_dir}: warm-up produced {out.shape} (non-finite or not dim {self.dim})")

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Tokens the model reads for each text: special tokens included, after truncation to max_length."""
        return [sum(e.attention_mask) for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=True)]

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        if len(encs) == 1:  # the most common request: nothing to sort, bucket or pad
            ids = np.array([encs[0].ids], dtype=np.int64)
            return l2_normalize(self._run(ids, np.array([encs[0].attention_mask], dtype=np.int64)))
        batch_size = min(batch_size, MAX_RUN_ROWS)  # the largest shape admission ran (model_admission)
        lengths = np.array([sum(e.attention_mask) for e in encs])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for idx in length_buckets(lengths[order], order, batch_size):
            width = int(lengths[idx[0]])  # the longest of the bucket: texts are sorted longest first
            ids = np.array([encs[i].ids[:width] for i in idx], dtype=np.int64)
            mask = np.array([encs[i].attention_mask[:width] for i in idx], dtype=np.int64)
            out[idx] = self._run(ids, mask)
        return l2_normalize(out)

    def _run(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        emb = run_contract(self.session, ids, mask)
        if emb.shape != (len(ids), self.dim):
            raise BundleError(f"{self.bundle_dir}: graph returned {emb.shape}, expected ({len(ids)}, {self.dim})")
        return emb
