"""Train the learned ranker (`ranker.json`) on order histories, with torch; the edge runs the result in numpy.

Training data: the tuning users only (`basket_protocol.is_tuning_user`), each of their last `targets_per_user`
orders as a target with the orders before it as history, features exactly as the edge computes them
(`service.edge.ranker_features`) on the shipped encoder's embeddings. Loss: binary cross-entropy per (case,
candidate): will this item be in the basket? (A listwise softmax loss scored 0.004-0.006 NDCG@10 lower in
development runs; the probability also reads as what it is.) The MLP (`hidden` ReLU units plus a linear skip)
trains with minibatch Adam; early stopping on a validation share of the tuning users picks the epoch.
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
    hidden: int = 32
    epochs: int = 20  # passes over the training rows, in shuffled minibatches
    batch_size: int = 4096
    lr: float = 0.003
    weight_decay: float = 1e-4
    valid_share: float = 0.2
    patience: int = 3  # epochs without a better validation loss before stopping
    seed: int = 0
    top_n: int = 5
    temperature: float = 0.1


@dataclass(frozen=True)
class Lists:
    x: np.ndarray  # (rows, F) float32: one row per (case, candidate)
    label: np.ndarray  # (rows,) float32: 1 for items of the target basket
    group: np.ndarray  # (rows,) int64: the user, so validation holds out whole users


def build_lists(cases: Sequence[BasketCase], emb: ProductEmbeddings, counts: Any, config: TrainConfig) -> Lists:
    from service.edge.ranker import RankerConfig

    rc = RankerConfig(top_n=config.top_n, temperature=config.temperature)
    rows, labels, groups = [], [], []
    for case in cases:
        target = set(case.target.products)
        y = np.array([p in target for p in case.candidates], dtype=np.float32)
        if not y.any():  # nothing of the basket among the candidates: no signal, only negatives
            continue
        rows.append(features(rank_inputs(case, emb, counts), rc).astype(np.float32))
        labels.append(y)
        groups.append(np.full(len(y), case.user_id, dtype=np.int64))
    return Lists(np.concatenate(rows), np.concatenate(labels), np.concatenate(groups))


def train(lists: Lists, config: TrainConfig) -> tuple[RankerFile, dict[str, Any]]:
    """Fit on the users outside the validation share, keep the epoch with the best validation loss."""
    import torch

    torch.set_num_threads(1)  # a small MLP: threads only contend with each other on a shared machine
    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    users = np.unique(lists.group)
    valid_users = rng.choice(users, size=max(1, round(len(users) * config.valid_share)), replace=False)
    is_valid = np.isin(lists.group, valid_users)
    mean = lists.x.mean(axis=0)
    std = lists.x.std(axis=0)
    scale = np.where(std > 1e-6, std, 1.0)
    z = torch.from_numpy((lists.x - mean) / scale).float()
    y = torch.from_numpy(lists.label)
    f = z.shape[1]
    hidden = torch.nn.Linear(f, config.hidden)
    out = torch.nn.Linear(config.hidden, 1, bias=False)
    lin = torch.nn.Linear(f, 1, bias=False)
    params = [*hidden.parameters(), *out.parameters(), *lin.parameters()]
    opt = torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay)
    va = torch.from_numpy(is_valid)

    def loss_of(sel: torch.Tensor) -> torch.Tensor:
        s = (out(torch.relu(hidden(z[sel]))) + lin(z[sel])).squeeze(-1)
        return torch.nn.functional.binary_cross_entropy_with_logits(s, y[sel])

    train_rows = torch.from_numpy(np.flatnonzero(~is_valid))
    best, best_state, epochs, since = float("inf"), None, 0, 0
    for epoch in range(config.epochs):
        for batch in train_rows[torch.randperm(len(train_rows))].split(config.batch_size):
            opt.zero_grad()
            loss_of(batch).backward()
            opt.step()
        with torch.no_grad():
            v = float(loss_of(va))
        epochs = epoch + 1
        if v < best - 1e-6:
            best, since = v, 0
            best_state = [p.detach().clone() for p in params]
        else:
            since += 1
            if since >= config.patience:
                break
    assert best_state is not None
    w1, b1, w2, wl = best_state

    def floats(t: Any) -> list[float]:
        return [round(float(v), 6) for v in np.asarray(t).reshape(-1)]

    spec = RankerFile(
        schema_version=1,
        kind="eibert-learned-ranker",
        features=list(ranker_features.FEATURES),
        mean=floats(mean),
        scale=floats(scale),
        hidden_weight=[floats(row) for row in w1.numpy()],
        hidden_bias=floats(b1.numpy()),
        out_weight=floats(w2.numpy()),
        linear_weight=floats(wl.numpy()),
        top_n=config.top_n,
        temperature=config.temperature,
    )
    stats = {
        "rows": len(lists.label),
        "users": len(users),
        "valid_users": len(valid_users),
        "epochs": epochs,
        "best_valid_loss": round(best, 5),
    }
    return spec, stats
