"""Train the learned ranker (`ranker.json`) on order histories, with torch; the edge runs the result in numpy.

Training data: the tuning users only (`basket_protocol.is_tuning_user`), each of their last `targets_per_user`
orders as a target with the orders before it as history, features exactly as the edge computes them
(`service.edge.ranker_features`) on the shipped encoder's embeddings. Loss: listwise softmax cross-entropy
averaged over each basket's items (ListNet with several positives), which optimises the top of the list as
NDCG does. The MLP (`hidden` ReLU units plus a linear skip) is small enough that full-batch Adam converges in
seconds; early stopping on a validation share of the tuning users picks the epoch.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from model_store.basket_protocol import BasketCase
from model_store.basket_requests import ProductEmbeddings, features, rank_inputs
from service.edge import ranker_features
from service.edge.learned_ranker import RankerFile

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    hidden: int = 16
    epochs: int = 400
    lr: float = 0.01
    weight_decay: float = 1e-4
    valid_share: float = 0.2
    patience: int = 40
    seed: int = 0
    top_n: int = 5
    temperature: float = 0.1


@dataclass(frozen=True)
class Lists:
    x: np.ndarray  # (lists, max_m, F) float32, padded with 0
    mask: np.ndarray  # (lists, max_m) bool: real candidates
    label: np.ndarray  # (lists, max_m) float32: 1 for items of the target basket


def build_lists(cases: Sequence[BasketCase], emb: ProductEmbeddings, counts: Any, config: TrainConfig) -> Lists:
    from service.edge.ranker import RankerConfig

    rc = RankerConfig(top_n=config.top_n, temperature=config.temperature)
    rows, labels = [], []
    for case in cases:
        target = set(case.target.products)
        y = np.array([p in target for p in case.candidates], dtype=np.float32)
        if not y.any():  # nothing of the basket among the candidates: no signal for a listwise loss
            continue
        rows.append(features(rank_inputs(case, emb, counts), rc).astype(np.float32))
        labels.append(y)
    width = max(len(r) for r in rows)
    f = len(ranker_features.FEATURES)
    x = np.zeros((len(rows), width, f), dtype=np.float32)
    mask = np.zeros((len(rows), width), dtype=bool)
    label = np.zeros((len(rows), width), dtype=np.float32)
    for i, (r, y) in enumerate(zip(rows, labels, strict=True)):
        x[i, : len(r)], mask[i, : len(r)], label[i, : len(r)] = r, True, y
    return Lists(x, mask, label)


def train(lists: Lists, config: TrainConfig, groups: np.ndarray) -> tuple[RankerFile, dict[str, Any]]:
    """Fit on the lists whose group (user) is not in the validation share; returns the file and a history."""
    import torch

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    users = np.unique(groups)
    valid_users = set(rng.choice(users, size=max(1, round(len(users) * config.valid_share)), replace=False).tolist())
    is_valid = np.array([g in valid_users for g in groups])
    real = lists.x[lists.mask]
    mean = real.mean(axis=0)
    scale = np.where(real.std(axis=0) > 1e-6, real.std(axis=0), 1.0)
    f = real.shape[1]

    x = torch.from_numpy((lists.x - mean) / scale).float()
    mask = torch.from_numpy(lists.mask)
    label = torch.from_numpy(lists.label)
    hidden = torch.nn.Linear(f, config.hidden)
    out = torch.nn.Linear(config.hidden, 1, bias=False)
    lin = torch.nn.Linear(f, 1, bias=False)
    params = [*hidden.parameters(), *out.parameters(), *lin.parameters()]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    tr, va = torch.from_numpy(~is_valid), torch.from_numpy(is_valid)

    def loss_of(sel: torch.Tensor) -> torch.Tensor:
        s = (out(torch.relu(hidden(x[sel]))) + lin(x[sel])).squeeze(-1)
        s = s.masked_fill(~mask[sel], -1e9)
        logp = torch.log_softmax(s, dim=1)
        y = label[sel]
        return -((logp * y).sum(1) / y.sum(1)).mean()

    best, best_state, history, since = float("inf"), None, [], 0
    for epoch in range(config.epochs):
        opt.zero_grad()
        loss = loss_of(tr)
        loss.backward()
        opt.step()
        with torch.no_grad():
            v = float(loss_of(va))
        history.append((epoch, float(loss.detach()), v))
        if v < best - 1e-5:
            best, since = v, 0
            best_state = [p.detach().clone() for p in params]
        else:
            since += 1
            if since >= config.patience:
                break
    assert best_state is not None
    w1, b1, w2, wl = best_state
    spec = RankerFile(
        schema_version=1,
        kind="eibert-learned-ranker",
        features=list(ranker_features.FEATURES),
        mean=[round(float(v), 6) for v in mean],
        scale=[round(float(v), 6) for v in scale],
        hidden_weight=[[round(float(v), 6) for v in row] for row in w1.numpy()],
        hidden_bias=[round(float(v), 6) for v in b1.numpy()],
        out_weight=[round(float(v), 6) for v in w2.numpy().reshape(-1)],
        linear_weight=[round(float(v), 6) for v in wl.numpy().reshape(-1)],
        top_n=config.top_n,
        temperature=config.temperature,
    )
    stats = {
        "lists": len(groups),
        "train_lists": int((~is_valid).sum()),
        "valid_lists": int(is_valid.sum()),
        "epochs": len(history),
        "best_valid_loss": round(best, 5),
    }
    return spec, stats
