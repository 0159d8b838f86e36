"""What the learned ranker knows about one (user, candidate) pair, computed on the device from its own log.

Three families, one row of `FEATURES` per candidate:

- **Repeats and cycles of the item itself** (DiCycle's time cycles, a point process's self-excitation): how
  often and how recently the user had this very item, its share of the user's sessions, its repeat cycle (mean
  gap between purchases) and where today falls in it (the phase, days since last / cycle), how regular the
  cycle is, and the item's hour-of-day and weekday affinity to the request's local time. The intensity
  sum_i exp(-age_i / tau_k) of the item's past events over a bank of decay times tau_k is a Hawkes-style
  self-exciting intensity; the combiner learns how to mix them, i.e. the shape of the decay kernel (COUPA's
  time-aware preference, without its RNN).
- **Related behaviours** (DiCycle's denoising): target attention over the `top_n` behaviour items most similar
  to the candidate, the candidate's own item excluded, so that a new item borrows the cycles, hours and
  weekdays of what the user buys that resembles it; plus today's content score (`service.edge.ranker`).
- **The user and the request**: sessions so far, share of repeat purchases, days since the last session,
  whether the request gave its clock, the candidates' prior.

Items are matched by `item_id` when a behaviour or candidate has one and by exact text otherwise, so a client
that sends no ids still gets repeat features. Clock features need the request's local time; without it
(`Clock.now` is None) they are 0 and flagged, so old clients get content and repeat scores only.
Everything is vectorised over unique items (bincount / indexing): a rank of 50 behaviours x 100 candidates
costs a few hundred microseconds of numpy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from service.edge import ranker

DAY_S = 86400.0
HOUR_S = 3600.0
DECAYS_DAYS = (3.0, 14.0, 60.0, 240.0)  # the intensity's decay bank
INTEREST_KINDS = frozenset({"view", "click", "purchase"})  # kinds that say what a user wants; impressions do not
RECENT_SESSIONS = 5
_TINY = 1e-12

FEATURES: tuple[str, ...] = (
    # the item itself
    "seen",
    "log_count",
    "share",
    "share_since_first",
    "recent_share",
    "in_last_session",
    "log_days_since",
    "has_cycle",
    "log_phase",
    "due",
    "cycle_cv",
    *(f"intensity_{int(d)}d" for d in DECAYS_DAYS),
    "item_hour",
    "item_dow",
    # related behaviours
    "content",
    "max_sim",
    "related_share",
    "related_due",
    "related_hour",
    "related_dow",
    "related_recency",
    # the user and the request
    "user_log_sessions",
    "user_repeat_share",
    "user_log_days_idle",
    "user_gap_ratio",
    "has_clock",
    "prior",
    "has_prior",
)
INDEX = {name: i for i, name in enumerate(FEATURES)}


@dataclass(frozen=True)
class Clock:
    """The request's time: `now` in unix seconds (None: the newest behaviour's time, no clock features) and the
    user's UTC offset, which turns every timestamp into a local hour and weekday."""

    now: float | None = None
    utc_offset_s: float = 0.0


def local_hour_dow(ts: np.ndarray, utc_offset_s: float) -> tuple[np.ndarray, np.ndarray]:
    """Local hour (float, 0-24) and weekday (Monday = 0) of unix seconds."""
    local = np.asarray(ts, dtype=np.float64) + utc_offset_s
    return (local % DAY_S) / HOUR_S, ((local // DAY_S + 3) % 7).astype(np.int64)


def item_keys(ids: Sequence[str | None], texts: Sequence[str]) -> list[str]:
    """One key per item: its id when given, else its text (prefixed so an id never equals a text)."""
    return [f"i:{i}" if i is not None else f"t:{t}" for i, t in zip(ids, texts, strict=True)]


def compute(
    behaviors: np.ndarray,
    ts: np.ndarray,
    kinds: Sequence[str],
    behavior_keys: Sequence[str],
    candidates: np.ndarray,
    candidate_keys: Sequence[str],
    clock: Clock,
    prior: np.ndarray | None = None,
    config: ranker.RankerConfig | None = None,
) -> np.ndarray:
    """(m, len(FEATURES)) float64 features of the m candidates. Inputs as `ranker.score`, plus keys and clock."""
    config = config or ranker.RankerConfig()
    m = candidates.shape[0]
    out = np.zeros((m, len(FEATURES)), dtype=np.float64)
    if prior is not None:
        out[:, INDEX["prior"]] = ranker.zscore(np.asarray(prior, dtype=np.float64))
        out[:, INDEX["has_prior"]] = 1.0
    keep = np.array([k in INTEREST_KINDS for k in kinds], dtype=bool)
    ts = np.asarray(ts, dtype=np.float64)
    if m == 0 or not keep.any():
        return out
    behaviors, ts = behaviors[keep], ts[keep]
    keys = [k for k, kept in zip(behavior_keys, keep, strict=True) if kept]
    now = float(ts.max()) if clock.now is None else float(clock.now)
    sims_n = (behaviors @ candidates.T).astype(np.float64)  # (n, m) cosine similarities, computed once
    out[:, INDEX["content"]] = ranker.content_score(behaviors, ts, candidates, config, sims_n)
    out[:, INDEX["has_clock"]] = float(clock.now is not None)

    # unique behaviour items and the per-item statistics everything below indexes
    slot: dict[str, int] = {}
    b_item = np.array([slot.setdefault(k, len(slot)) for k in keys], dtype=np.int64)  # (n,)
    u = len(slot)
    count = np.bincount(b_item, minlength=u).astype(np.float64)  # (u,)
    sessions = np.unique(ts)
    age_days = np.maximum(now - ts, 0.0) / DAY_S  # (n,)
    last = np.full(u, -np.inf)
    np.maximum.at(last, b_item, ts)
    first = np.full(u, np.inf)
    np.minimum.at(first, b_item, ts)
    days_since = np.maximum(now - last, 0.0) / DAY_S
    cycle = np.where(count >= 2, (last - first) / DAY_S / np.maximum(count - 1, 1), 0.0)  # mean gap, days
    has_cycle = (count >= 2) & (cycle > 0)
    phase = np.where(has_cycle, days_since / np.where(has_cycle, cycle, 1.0), 1.0)
    log_phase = np.clip(np.log(np.maximum(phase, 1e-3)), -4.0, 4.0)
    due = np.where(has_cycle, np.exp(-np.abs(log_phase)), 0.0)
    cv = _cycle_cv(ts, b_item, u, cycle, has_cycle)
    share = count / len(sessions)
    since_first = len(sessions) - np.searchsorted(sessions, first)  # sessions from the item's first one on
    share_since_first = count / np.maximum(since_first, 1)
    recent_from = sessions[max(len(sessions) - RECENT_SESSIONS, 0)]
    recent_share = np.bincount(b_item, (ts >= recent_from).astype(np.float64), minlength=u) / min(
        len(sessions), RECENT_SESSIONS
    )
    in_last = (last >= sessions[-1]).astype(np.float64)
    intensity = np.stack([np.log1p(np.bincount(b_item, np.exp(-age_days / d), minlength=u)) for d in DECAYS_DAYS], 1)
    if clock.now is not None:
        hour, dow = local_hour_dow(ts, clock.utc_offset_s)
        now_hour, now_dow = local_hour_dow(np.array([now]), clock.utc_offset_s)
        item_hour = np.bincount(b_item, np.cos(2 * np.pi * (hour - now_hour[0]) / 24.0), minlength=u) / count
        item_dow = np.bincount(b_item, (dow == now_dow[0]).astype(np.float64), minlength=u) / count
    else:
        item_hour = item_dow = np.zeros(u)
    recency = np.exp(-days_since / 30.0)

    # the candidates' own items
    c_item = np.array([slot.get(k, -1) for k in candidate_keys], dtype=np.int64)  # (m,)
    own = c_item >= 0
    ci = c_item[own]
    out[own, INDEX["seen"]] = 1.0
    out[own, INDEX["log_count"]] = np.log1p(count[ci])
    out[own, INDEX["share"]] = share[ci]
    out[own, INDEX["share_since_first"]] = share_since_first[ci]
    out[own, INDEX["recent_share"]] = recent_share[ci]
    out[own, INDEX["in_last_session"]] = in_last[ci]
    out[own, INDEX["log_days_since"]] = np.log1p(days_since[ci])
    out[own, INDEX["has_cycle"]] = has_cycle[ci]
    out[own, INDEX["log_phase"]] = np.where(has_cycle[ci], log_phase[ci], 0.0)
    out[own, INDEX["due"]] = due[ci]
    out[own, INDEX["cycle_cv"]] = cv[ci]
    for k, d in enumerate(DECAYS_DAYS):
        out[own, INDEX[f"intensity_{int(d)}d"]] = intensity[ci, k]
    out[own, INDEX["item_hour"]] = item_hour[ci]
    out[own, INDEX["item_dow"]] = item_dow[ci]

    # related behaviours: target attention over the top_n most similar *other* items
    first_row = np.full(u, -1, dtype=np.int64)
    first_row[b_item[::-1]] = np.arange(len(b_item))[::-1]
    sims = sims_n[first_row]  # (u, m), a copy: fancy indexing
    sims[ci, np.flatnonzero(own)] = -np.inf
    valid = np.isfinite(sims)
    if u > 1 or (~own).any():
        keep_n = min(config.top_n, u)
        kth = -np.partition(-np.where(valid, sims, -np.inf), keep_n - 1, axis=0)[keep_n - 1]  # (m,)
        mask = valid & (sims >= kth[None, :])
        logits = np.where(mask, sims / config.temperature, -np.inf)
        peak = logits.max(axis=0, keepdims=True)
        att = np.where(mask, np.exp(logits - np.where(np.isfinite(peak), peak, 0.0)), 0.0)
        att /= np.maximum(att.sum(axis=0, keepdims=True), _TINY)  # (u, m)
        out[:, INDEX["max_sim"]] = np.where(valid.any(axis=0), np.where(valid, sims, -1.0).max(axis=0), 0.0)
        out[:, INDEX["related_share"]] = share @ att
        out[:, INDEX["related_due"]] = due @ att
        out[:, INDEX["related_hour"]] = item_hour @ att
        out[:, INDEX["related_dow"]] = item_dow @ att
        out[:, INDEX["related_recency"]] = recency @ att

    out[:, INDEX["user_log_sessions"]] = np.log1p(len(sessions))
    out[:, INDEX["user_repeat_share"]] = float(count[count >= 2].sum() / count.sum())
    idle_days = max(now - float(ts.max()), 0.0) / DAY_S
    mean_gap = float(sessions[-1] - sessions[0]) / DAY_S / max(len(sessions) - 1, 1)
    out[:, INDEX["user_log_days_idle"]] = np.log1p(idle_days)
    out[:, INDEX["user_gap_ratio"]] = np.log((idle_days + 0.5) / (mean_gap + 0.5))
    return out


def _cycle_cv(ts: np.ndarray, item: np.ndarray, u: int, cycle: np.ndarray, has_cycle: np.ndarray) -> np.ndarray:
    """Coefficient of variation of each item's gaps between purchases (0: perfectly regular)."""
    order = np.lexsort((ts, item))
    s_item, s_ts = item[order], ts[order]
    same = s_item[1:] == s_item[:-1]
    gaps = (s_ts[1:] - s_ts[:-1])[same] / DAY_S
    owner = s_item[1:][same]
    n = np.bincount(owner, minlength=u).astype(np.float64)
    sq = np.bincount(owner, gaps**2, minlength=u)
    var = np.maximum(sq / np.maximum(n, 1) - cycle**2, 0.0)
    return np.where(has_cycle, np.minimum(np.sqrt(var) / np.where(has_cycle, cycle, 1.0), 5.0), 0.0)
