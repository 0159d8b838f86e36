from __future__ import annotations

import random

import torch

from model_store.build_config import DistillConfig
from model_store.distill import cosent_loss, info_nce, length_batches, lr_at


def _unit(x: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.normalize(x, dim=-1)


def test_cosent_prefers_cosines_ordered_like_scores() -> None:
    a = _unit(torch.randn(4, 8, generator=torch.Generator().manual_seed(0)))
    scores = torch.tensor([4.0, 3.0, 2.0, 1.0])
    noise = torch.randn(4, 8, generator=torch.Generator().manual_seed(1))
    good = _unit(a + torch.tensor([0.1, 0.5, 1.0, 3.0])[:, None] * noise)  # similarity falls with score
    bad = _unit(a + torch.tensor([3.0, 1.0, 0.5, 0.1])[:, None] * noise)
    assert cosent_loss(a, good, scores) < cosent_loss(a, bad, scores)


def test_cosent_ignores_ties_only_batches() -> None:
    a = _unit(torch.randn(3, 4))
    assert float(cosent_loss(a, a, torch.ones(3))) == 0.0  # log(1 + nothing)


def test_info_nce_is_low_for_matching_pairs() -> None:
    a = _unit(torch.randn(8, 16, generator=torch.Generator().manual_seed(0)))
    shuffled = a[torch.randperm(8, generator=torch.Generator().manual_seed(1))]
    assert info_nce(a, a) < info_nce(a, shuffled)


def test_length_batches_cover_every_item_once() -> None:
    lengths = [random.Random(i).randint(3, 40) for i in range(1000)]
    batches = length_batches(lengths, 32, random.Random(0))
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1000))
    spread = sum(max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in batches) / len(batches)
    assert spread < 5  # batches group similar lengths


def test_lr_schedule_warms_up_then_decays() -> None:
    cfg = DistillConfig(steps=100, warmup=10, lr=1e-3)
    assert lr_at(0, cfg) < lr_at(9, cfg) == cfg.lr
    assert lr_at(99, cfg) < lr_at(50, cfg) < cfg.lr
    assert lr_at(99, cfg) >= 0.1 * cfg.lr
