"""The student: a small pre-LayerNorm BERT-style encoder that lands in the teacher's space.

Built bottom-up (attention, FFN, block, encoder), taking only `StudentConfig`. Choices, each measured in
the build report: a factorised embedding (V x E, then E -> H) when E < H; parameter recurrence (`unique_layers`
distinct blocks applied `repeats` times); output projections initialised at zero so that, before training,
the student is exactly mean pooling of its (teacher-derived) token vectors mapped back by the head.
The `static` kind has no transformer layers at all: the Model2Vec-style baseline under the same bytes.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from model_store.build_config import StudentConfig


class SelfAttention(nn.Module):
    def __init__(self, cfg: StudentConfig) -> None:
        super().__init__()
        assert cfg.hidden % cfg.heads == 0, "hidden must divide into heads"
        self.heads = cfg.heads
        self.qkv = nn.Linear(cfg.hidden, 3 * cfg.hidden)
        self.out = nn.Linear(cfg.hidden, cfg.hidden)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        b, t, h = x.shape  # (B, T, H)
        q, k, v = self.qkv(x).view(b, t, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)  # 3 x (B, nh, T, hd)
        att = (q @ k.transpose(-2, -1)) / math.sqrt(h // self.heads) + bias  # (B, nh, T, T)
        y = att.softmax(dim=-1) @ v  # (B, nh, T, hd)
        return self.out(y.transpose(1, 2).reshape(b, t, h))


class FeedForward(nn.Module):
    def __init__(self, cfg: StudentConfig) -> None:
        super().__init__()
        self.up = nn.Linear(cfg.hidden, cfg.ffn)
        self.down = nn.Linear(cfg.ffn, cfg.hidden)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down(nn.functional.gelu(self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: StudentConfig) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.hidden)
        self.attn = SelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.hidden)
        self.ffn = FeedForward(cfg)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), bias)
        return x + self.ffn(self.ln2(x))


class Student(nn.Module):
    """`(input_ids, attention_mask) -> (B, out_dim)` unit rows: the bundle's ONNX contract."""

    def __init__(self, cfg: StudentConfig, vocab_size: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.vocab_size = vocab_size
        width = cfg.embed_dim
        self.tok = nn.Embedding(vocab_size, cfg.embed_dim)  # (V, E)
        self.proj = nn.Linear(cfg.embed_dim, cfg.hidden, bias=False) if cfg.embed_dim != cfg.hidden else None
        if cfg.kind == "transformer":
            width = cfg.hidden
            self.pos = nn.Embedding(cfg.max_length, cfg.hidden)
            self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.unique_layers))
        else:
            self.pos = None
            self.blocks = nn.ModuleList()
        self.head = nn.Linear(width, cfg.out_dim)  # into the teacher's space

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        x = self.tok(input_ids)  # (B, T, E)
        if self.proj is not None and self.cfg.kind == "transformer":
            x = self.proj(x)  # (B, T, H)
        if self.cfg.kind == "transformer":
            t = input_ids.shape[1]
            x = x + self.pos(torch.arange(t, device=input_ids.device))[None]
            bias = (1.0 - attention_mask[:, None, None, :].to(x.dtype)) * -1e4  # (B, 1, 1, T)
            for _ in range(self.cfg.repeats):
                for block in self.blocks:
                    x = block(x, bias)
        m = attention_mask.unsqueeze(-1).to(x.dtype)  # (B, T, 1)
        pooled = (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)  # (B, H): mean over real tokens
        return nn.functional.normalize(self.head(pooled), p=2, dim=-1)  # (B, 384), unit rows

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def estimated_int8_bytes(self) -> int:
        """Matrices at 1 byte per weight, vectors (biases, LayerNorms) at 4: close to the quantized ONNX file."""
        return sum(p.numel() * (1 if p.dim() >= 2 else 4) for p in self.parameters())

    @torch.no_grad()
    def init_from_teacher(self, static: np.ndarray) -> dict[str, float]:
        """Parameter integration: token vectors = PCA of the teacher's static token outputs; head = inverse PCA.

        `static` is (V, 384): each kept token's teacher output in isolation. Since the head is linear (so it commutes
        with mean pooling) and the blocks start as identity, the untrained student is mean pooling of those
        static vectors (up to the PCA's lost variance). A teacher narrower than E (your own small one) fills its
        components first; the other token columns start as small noise with zero head weights, so the untrained
        student is unchanged and gradients still reach them.
        """
        assert static.shape == (self.vocab_size, self.cfg.out_dim), f"static {static.shape} != (V, out_dim)"
        mean = static.mean(axis=0)
        _, s, vt = np.linalg.svd(static - mean, full_matrices=False)
        e = self.cfg.embed_dim
        k = min(e, len(vt))
        comps = np.zeros((e, vt.shape[1]), dtype=vt.dtype)  # (E, D)
        comps[:k] = vt[:k]
        coords = (static - mean) @ comps.T  # (V, E)
        if k < e:
            noise = np.random.default_rng(0).standard_normal((len(static), e - k))
            coords[:, k:] = 0.01 * coords[:, :k].std() * noise
        self.tok.weight.copy_(torch.from_numpy(coords.astype(np.float32)))
        head_in = comps.T  # (D, E)
        if self.proj is not None and self.cfg.kind == "transformer":
            # Embeddings go E -> H through `proj`; make proj an isometric lift and the head undo it.
            q, _ = np.linalg.qr(np.random.default_rng(0).standard_normal((self.cfg.hidden, e)))  # (H, E)
            self.proj.weight.copy_(torch.from_numpy(q.astype(np.float32)))
            head_in = comps.T @ q.T  # (D, H)
        self.head.weight.copy_(torch.from_numpy(head_in.astype(np.float32)))
        self.head.bias.copy_(torch.from_numpy(mean.astype(np.float32)))
        if self.pos is not None:
            self.pos.weight.zero_()
        for block in self.blocks:
            block.attn.out.weight.zero_()
            block.attn.out.bias.zero_()
            block.ffn.down.weight.zero_()
            block.ffn.down.bias.zero_()
        return {"pca_variance_kept": float((s[:e] ** 2).sum() / (s**2).sum())}


def module_bytes(model: Student) -> dict[str, int]:
    """Estimated int8 bytes per module group, for the report's size breakdown."""
    groups: dict[str, int] = {}
    for name, p in model.named_parameters():
        if name.startswith("tok") or name.startswith("proj") or name.startswith("pos"):
            key = "embeddings"
        elif ".attn." in name:
            key = "attention"
        elif ".ffn." in name:
            key = "ffn"
        elif ".ln" in name:
            key = "layernorm"
        else:
            key = "head"
        groups[key] = groups.get(key, 0) + p.numel() * (1 if p.dim() >= 2 else 4)
    return groups


@torch.no_grad()
def teacher_static_vectors(old_ids: np.ndarray, teacher=None, *, batch_size: int = 256) -> np.ndarray:
    """Each token alone through the teacher (`[CLS] tok [SEP]`), the token's output row: (len(old_ids), dim).

    For [CLS]/[SEP]/[PAD] themselves the row is the teacher's output at their own position. `teacher` is a
    `model_store.teacher.Teacher` (default: the packaged one).
    """
    from model_store.teacher import TeacherEncoder

    encoder = TeacherEncoder(teacher=teacher)
    cls_id = encoder.tokenizer.token_to_id("[CLS]")
    sep_id = encoder.tokenizer.token_to_id("[SEP]")
    out = np.empty((len(old_ids), encoder.dim), dtype=np.float32)
    for start in range(0, len(old_ids), batch_size):
        chunk = torch.from_numpy(np.asarray(old_ids[start : start + batch_size], dtype=np.int64))
        ids = torch.stack([torch.full_like(chunk, cls_id), chunk, torch.full_like(chunk, sep_id)], dim=1)  # (b, 3)
        hidden = encoder.model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state  # (b, 3, dim)
        rows = hidden[:, 1].clone()
        rows[chunk == cls_id] = hidden[chunk == cls_id, 0]
        rows[chunk == sep_id] = hidden[chunk == sep_id, 2]
        out[start : start + len(chunk)] = rows.numpy()
    return out
