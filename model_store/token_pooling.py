"""Sentence pooling + L2 norm as torch code, so what is trained is exactly what is exported to ONNX."""

from __future__ import annotations

import torch
from torch import nn


def mean_pool_normalize(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over real tokens, then L2 norm: the teacher's pooling (sentence-transformers `mean_tokens`)."""
    m = mask.unsqueeze(-1).to(hidden.dtype)  # (B, T, 1)
    pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)  # (B, D)
    return nn.functional.normalize(pooled, p=2, dim=-1)


def pool_normalize(hidden: torch.Tensor, mask: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """A sentence-transformers pooling mode (`mean`, `cls`, `max` over real tokens), then L2 norm."""
    if mode == "mean":
        return mean_pool_normalize(hidden, mask)
    if mode == "cls":
        return nn.functional.normalize(hidden[:, 0], p=2, dim=-1)
    if mode == "max":
        padded = hidden.masked_fill(mask.unsqueeze(-1) == 0, torch.finfo(hidden.dtype).min)
        return nn.functional.normalize(padded.max(dim=1).values, p=2, dim=-1)
    raise ValueError(f"unknown pooling {mode!r}")


class PooledEncoder(nn.Module):
    """Wraps an HF-style encoder (returns `last_hidden_state` first) into `(ids, mask) -> (B, D)` unit rows."""

    def __init__(self, encoder: nn.Module, pooling: str = "mean") -> None:
        super().__init__()
        self.encoder = encoder
        self.pooling = pooling

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask)[0]  # (B, T, H)
        return pool_normalize(hidden, attention_mask, self.pooling)
