"""The local ranker: scores candidates against a user's behaviours, on the device, in pure numpy.

score(c) = w * local(c) + (1 - w) * global(c), all inputs L2-normalised embeddings:

- recency: behaviour i weighs r_i = kind_weight(kind_i) * 0.5 ** ((t_newest - t_i) / half_life); the newest
  behaviour weighs 1, so only relative time matters and clocks need not agree with the server's.
- global interest g = normalise(sum_i r_i b_i): what the user likes overall; global(c) = g . c.
- local interest, DIN-style target attention: for each candidate c only the `top_n` behaviours most similar
  to c are kept (the rest is noise for this candidate, as in DiCycle's denoising), weighted by
  a_ic = r_i exp(s_ic / temperature) / sum_j r_j exp(s_jc / temperature) with s_ic = b_i . c, and
  local(c) = sum_i a_ic s_ic = (sum_i a_ic b_i) . c, i.e. the candidate scored against its own interest vector.
- prior (optional): a score the candidates arrive with (the server's recall score, e.g. log popularity). The
  device re-ranks what the server recalled; with a prior, score = z(content) + prior_weight * z(prior), both
  z-scored within the request. On MovieLens, content alone does not beat popularity (random unrated movies
  are mostly obscure, the next movie a user rates mostly is not); content re-ranking of popularity does.

Everything is a fixed sequence of numpy operations with value-based (not position-based) selection, so the
same inputs give the same scores, and `top_k` breaks ties by input order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

_TINY = 1e-12


@dataclass(frozen=True)
class RankerConfig:
    """Defaults tuned on MovieLens users 1-500 with teacher embeddings (`model_store/eval_rank.py`)."""

    half_life: float = 30 * 86400.0  # seconds for a behaviour's weight to halve, relative to the newest one
    top_n: int = 5  # behaviours kept per candidate by target attention (denoising)
    temperature: float = 0.1  # softmax temperature of target attention over cosine similarities
    local_weight: float = 0.5  # blend of local (candidate-aware) and global interest
    prior_weight: float = 1.5  # weight of the candidates' z-scored prior (when given) against the content score
    # e.g. {"click": 1.0, "view": 0.3}; else 1. Impressions (shown, not clicked) say nothing of interest.
    kind_weights: Mapping[str, float] = field(default_factory=lambda: {"impression": 0.0})

    def __post_init__(self) -> None:
        if not self.half_life > 0:
            raise ValueError("half_life must be > 0")
        if self.top_n < 1:
            raise ValueError("top_n must be >= 1")
        if not self.temperature > 0:
            raise ValueError("temperature must be > 0")
        if not 0.0 <= self.local_weight <= 1.0:
            raise ValueError("local_weight must be in [0, 1]")
        if not self.prior_weight >= 0:
            raise ValueError("prior_weight must be >= 0")
        if any(w < 0 for w in self.kind_weights.values()):
            raise ValueError("kind_weights must be >= 0")


def log_recency_weights(ts: np.ndarray, kinds: Sequence[str] | None, config: RankerConfig) -> np.ndarray:
    """(n,) log weights: 0 for the newest behaviour, minus ln 2 per `half_life` seconds before it.

    Logs, because years-old behaviours underflow to weight 0 in linear space at short half-lives.
    """
    ts = np.asarray(ts, dtype=np.float64)
    if ts.size == 0:
        return np.zeros(0, dtype=np.float64)
    age = np.maximum(ts.max() - ts, 0.0)
    logw = -np.log(2.0) * age / config.half_life
    if kinds is not None and config.kind_weights:
        kw = np.array([config.kind_weights.get(k, 1.0) for k in kinds], dtype=np.float64)
        with np.errstate(divide="ignore"):
            logw = logw + np.log(kw)  # weight 0 -> -inf: that behaviour is ignored
    return logw


def zscore(x: np.ndarray) -> np.ndarray:
    std = float(x.std())
    return (x - x.mean()) / std if std > _TINY else np.zeros_like(x)


def score(
    behaviors: np.ndarray,
    ts: np.ndarray,
    candidates: np.ndarray,
    config: RankerConfig | None = None,
    kinds: Sequence[str] | None = None,
    prior: np.ndarray | None = None,
) -> np.ndarray:
    """(m,) scores of `candidates` (m, d) for a user with `behaviors` (n, d) at times `ts` (n,).

    `prior` (m,), optional, is a score the candidates arrive with (e.g. log popularity from the server's
    recall stage); it is blended after z-scoring both within the request, so its scale does not matter.
    With no behaviours (a cold start) the content score is 0 and only the prior, if any, orders candidates.
    """
    config = config or RankerConfig()
    behaviors = np.asarray(behaviors, dtype=np.float32)
    candidates = np.asarray(candidates, dtype=np.float32)
    if behaviors.ndim != 2 or candidates.ndim != 2:
        raise ValueError(f"expected 2-d arrays: behaviors {behaviors.shape}, candidates {candidates.shape}")
    n, m = behaviors.shape[0], candidates.shape[0]
    if n and behaviors.shape[1] != candidates.shape[1]:
        raise ValueError(f"dim mismatch: behaviors {behaviors.shape}, candidates {candidates.shape}")
    if len(ts) != n or (kinds is not None and len(kinds) != n):
        raise ValueError(f"{n} behaviours but {len(ts)} timestamps")
    if prior is not None and len(prior) != m:
        raise ValueError(f"{m} candidates but {len(prior)} priors")
    content = _content_score(behaviors, ts, candidates, config, kinds) if n and m else np.zeros(m)
    if prior is None or config.prior_weight == 0.0:
        return content
    return zscore(content) + config.prior_weight * zscore(np.asarray(prior, dtype=np.float64))


def _content_score(
    behaviors: np.ndarray,
    ts: np.ndarray,
    candidates: np.ndarray,
    config: RankerConfig,
    kinds: Sequence[str] | None,
    sims: np.ndarray | None = None,
) -> np.ndarray:
    logw = log_recency_weights(ts, kinds, config)  # (n,)
    if not np.isfinite(logw).any():  # kind_weights zeroed every behaviour: no signal
        return np.zeros(candidates.shape[0], dtype=np.float64)
    r = np.exp(logw - logw.max())  # (n,) linear weights, the largest is 1

    g = (r[:, None] * behaviors).sum(axis=0)  # (d,)
    g /= max(float(np.linalg.norm(g)), _TINY)
    global_score = candidates.astype(np.float64) @ g  # (m,)

    n = behaviors.shape[0]
    if sims is None:
        sims = (behaviors @ candidates.T).astype(np.float64)  # (n, m) cosine similarities
    usable = np.isfinite(logw)  # (n,)
    keep = min(config.top_n, n)
    # Value threshold of the keep-th most similar behaviour per candidate; ties are all kept (deterministic).
    kth = np.partition(sims, n - keep, axis=0)[n - keep]  # (m,)
    mask = (sims >= kth[None, :]) & usable[:, None]
    logits = np.where(mask, sims / config.temperature + np.where(usable, logw, 0.0)[:, None], -np.inf)
    peak = logits.max(axis=0, keepdims=True)  # (1, m)
    att = np.exp(logits - np.where(np.isfinite(peak), peak, 0.0))  # (n, m), 0 where masked
    att /= np.maximum(att.sum(axis=0, keepdims=True), _TINY)
    local_score = (att * sims).sum(axis=0)  # (m,)

    return config.local_weight * local_score + (1.0 - config.local_weight) * global_score


def content_score(
    behaviors: np.ndarray, ts: np.ndarray, candidates: np.ndarray, config: RankerConfig, sims: np.ndarray
) -> np.ndarray:
    """`score` without a prior, for callers that already hold the (n, m) similarities (the learned ranker)."""
    if not len(behaviors) or not len(candidates):
        return np.zeros(candidates.shape[0], dtype=np.float64)
    return _content_score(behaviors, ts, candidates, config, None, sims)


def top_k(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k best scores, best first; equal scores keep their input order."""
    if k < 0:
        raise ValueError("k must be >= 0")
    order = np.argsort(-np.asarray(scores, dtype=np.float64), kind="stable")
    return order[:k]
