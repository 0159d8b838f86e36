"""Position bias in the loop: two weeks of slates served by a naive learner and by a position-corrected one.

A fast in-process experiment (`eibert sim position-bias`, and a line of `eibert demo`'s summary). The users are
the fleet's personas (`simulators.personas`): real MovieLens tastes, MIND news interests, and each their own
examination curve (skimmers who never look past slot 2, deep scrollers, and between). Every simulated day each
user opens a few sessions; a session draws 20 candidates from a fixed pool of real items, today's ranker and
the learner under test order them (the sum of their z-scored scores: the learner re-ranks on top of what ships),
the top 10 are shown, and the user examines and clicks through the simulation's truth (`examination`,
`relevance`). The device logs every impression with its slot (`simulators.impressions`) and
refits its learner from its own log at the end of each day:

- `naive`: logistic regression that reads every unclicked impression as not relevant;
- `global`: PBM regression-EM (`service.edge.position_bias`) with one fleet-wide examination curve;
- `personal`: the same with each user's own curve, shrunk towards the fleet's by the amount of their data
  (COUPA's personalised position selector).

The fleet curve is pooled from the devices' per-slot sufficient statistics of the day before (two numbers per
slot). Relevance features are what a device has: the item's embedding from the shipped bundle (computed once
for the pool, projected on the pool's top principal components), the content score of today's ranker against
the user's history, and the item's popularity (the prior a recall stage sends with each candidate). On day 0
every learner serves today's ranker (no log yet), so the three worlds start equal; they share every random
draw (sessions, candidates, and the uniforms that decide examination and clicks per slot), so the difference
between them is the learner alone.

Measured: NDCG@10 of the served slates against the true relevance (gain = P(click | examined)) on the last
day and over all days, and each user's examination-curve error (mean absolute error over slots 1-9; slot 0 is
1 by convention) of the personalised estimate, the fleet curve, and the naive click-rate-by-slot curve.
The serving rule has three ablations (`PositionBiasConfig`: the learner alone, random exploration, the
popularity prior blended in); README "Position bias" has their figures.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field

from service.edge import ranker
from service.edge.position_bias import (
    ExaminationPrior,
    PBMFit,
    RelevanceModel,
    click_rate_curve,
    fit_naive,
    fit_pbm,
    pool_curve,
)
from simulators.impressions import ImpressionBuffer
from simulators.personas import Persona, examination_curve, load_catalog_and_personas, relevance
from simulators.summary import PositionBiasResult

Learner = Literal["naive", "global", "personal"]
LEARNERS: tuple[Learner, ...] = ("naive", "global", "personal")
SHOWN = 10  # slots of a served slate; NDCG@10
SLATE = 20  # candidates per session (the fleet's default slate)
MOVIES_PER_SLATE = 14  # the fleet's MOVIE_SHARE of 0.7; the rest is news
POOL_MOVIES = 900  # items embedded once per run: drawn by popularity^0.5, as the fleet draws candidates
POOL_NEWS = 300
PROJECTION_DIMS = 16  # principal components of the pool's embeddings used as relevance features
PRIOR_STRENGTH = (
    2.0  # pseudo-observations of examination per slot of the fleet curve (best curve error of 1, 2, 5, 20 on seed 1)
)
L2 = 10.0  # ridge of every learner: the best of 1, 3, 10, 30, 100 for naive and personal alike on seed 1
LEARNER_WEIGHT = 1.0  # the learner's z-scored relevance beside today's ranker's z-scored score
MAX_SESSIONS_PER_DAY = 12
FIRST_FIT_ITERATIONS = 30
DAILY_FIT_ITERATIONS = 8  # warm-started from yesterday's fit
MAX_USERS = 2000
MAX_DAYS = 60
HISTORY_SPACING_S = 86400.0


class PositionBiasConfig(BaseModel):
    users: int = Field(default=200, ge=2, le=MAX_USERS)
    days: int = Field(default=14, ge=2, le=MAX_DAYS)
    seed: int = Field(default=0, ge=0)
    learners: tuple[Learner, ...] = LEARNERS  # "naive" and "personal" are always run (the ratio compares them)
    # ablations of the serving rule (README "Position bias"): the learner alone orders the slates (no ranker
    # beside it); a share of sessions show one random unshown candidate in a random slot; the recall stage's
    # z-scored popularity prior blended in at this weight
    learner_only: bool = False
    explore: float = Field(default=0.0, ge=0.0, le=1.0)
    prior_weight: float = Field(default=0.0, ge=0.0, le=10.0)
    bundle: Path | None = None  # whose encoder embeds the pool (default: the shipped bundle)


@dataclass
class _World:
    """One learner's run: each user's impression log and current model."""

    learner: str
    logs: list[ImpressionBuffer]
    models: list[RelevanceModel | None]
    fits: list[PBMFit | None]
    fleet_curve: np.ndarray | None = None
    ndcg_by_day: list[list[float]] = field(default_factory=list)


@dataclass(frozen=True)
class _Setup:
    personas: list[Persona]
    projection: np.ndarray  # (P, PROJECTION_DIMS) pool features
    content: np.ndarray  # (U, P) z-scored content score of today's ranker per user
    truth: np.ndarray  # (U, P) relevance
    curves: np.ndarray  # (U, SHOWN) true examination curves
    prior: np.ndarray  # (P,) z-scored log popularity: the recall stage's prior that /v1/rank blends in
    n_movies: int
    release_id: str

    def features(self, user: int, items: Sequence[int] | np.ndarray) -> np.ndarray:
        idx = np.asarray(items, dtype=np.int64)
        return np.hstack([self.content[user, idx][:, None], self.prior[idx][:, None], self.projection[idx]])


def _style(persona: Persona) -> str:
    if persona.examine_depth is not None:
        return "skim"
    return "deep" if persona.examine_decay < 0.35 else "typical"


def _setup(config: PositionBiasConfig) -> _Setup:
    from model_store.shipped import SHIPPED_BUNDLE
    from service.edge.encoder import OnnxEncoder

    catalog, personas = load_catalog_and_personas(config.users, config.seed)
    rng = np.random.default_rng([config.seed, 1])
    movies = rng.choice(len(catalog.movie_ids), size=POOL_MOVIES, replace=False, p=catalog.movie_weights)
    news = rng.choice(len(catalog.news_ids), size=POOL_NEWS, replace=False)
    pool = [catalog.items[catalog.movie_ids[i]] for i in movies] + [catalog.items[catalog.news_ids[i]] for i in news]

    encoder = OnnxEncoder(config.bundle or SHIPPED_BUNDLE, threads=2, verify=True)
    emb = encoder.encode([item.text for item in pool])  # (P, d), L2-normalised
    centred = (emb - emb.mean(axis=0)).astype(np.float64)
    _, vecs = np.linalg.eigh(centred.T @ centred)  # ascending eigenvalues: the last columns are the top ones
    proj = centred @ vecs[:, ::-1][:, :PROJECTION_DIMS]
    proj /= np.maximum(proj.std(axis=0), 1e-9)

    index = {item.id: i for i, item in enumerate(pool)}
    missing = [h for p in personas for h in p.history if h not in index]
    hist_emb = (
        dict(zip(missing, encoder.encode([catalog.items[h].text for h in missing]), strict=True)) if missing else {}
    )
    content = np.zeros((len(personas), len(pool)))
    for u, persona in enumerate(personas):
        b = np.stack([emb[index[h]] if h in index else hist_emb[h] for h in persona.history])
        ts = np.arange(len(persona.history), dtype=np.float64) * HISTORY_SPACING_S
        s = ranker.score(b, ts, emb)
        content[u] = (s - s.mean()) / max(float(s.std()), 1e-9)
    truth = np.array([[relevance(item, p) for item in pool] for p in personas])
    curves = np.stack([examination_curve(p, SHOWN) for p in personas])
    log_pop = np.log(catalog.movie_weights[movies])  # weights are popularity^0.5: the same order
    prior = np.concatenate([log_pop, np.full(POOL_NEWS, np.median(log_pop))])
    prior = (prior - prior.mean()) / prior.std()
    return _Setup(personas, proj, content, truth, curves, prior, POOL_MOVIES, encoder.manifest.release_id)


def _ndcg(gains_shown: np.ndarray, gains_all: np.ndarray) -> float:
    discount = 1.0 / np.log2(np.arange(2, SHOWN + 2))
    ideal = float(np.sort(gains_all)[::-1][:SHOWN] @ discount)
    return float(gains_shown @ discount[: gains_shown.shape[0]]) / ideal if ideal > 0 else 0.0


def _sessions(config: PositionBiasConfig, setup: _Setup, user: int, day: int):
    """The (candidates, examination uniforms, relevance uniforms) of each of this user's sessions that day:
    the same in every world (common random numbers)."""
    rng = np.random.default_rng([config.seed, 2, user, day])
    n = min(int(rng.poisson(setup.personas[user].sessions_per_day)), MAX_SESSIONS_PER_DAY)
    n_news = setup.projection.shape[0] - setup.n_movies
    for _ in range(n):
        movies = rng.choice(setup.n_movies, size=MOVIES_PER_SLATE, replace=False)
        news = setup.n_movies + rng.choice(n_news, size=SLATE - MOVIES_PER_SLATE, replace=False)
        yield np.concatenate([movies, news]), rng.random(SHOWN), rng.random(SHOWN)


def _serve(setup: _Setup, world: _World, user: int, day: int, config: PositionBiasConfig) -> None:
    """Serve the day's sessions: today's ranker plus the learner's relevance (each z-scored within the slate),
    top SHOWN in order; log every impression; score the slate against the truth."""
    model = world.models[user]
    scores_today: list[float] = []
    explore = np.random.default_rng([config.seed, 3, user, day])  # the same in every world
    for cands, u_exam, u_rel in _sessions(config, setup, user, day):
        base = ranker.zscore(setup.content[user, cands])
        if model is None:
            scores = base
        else:
            learned = LEARNER_WEIGHT * ranker.zscore(model.logits(setup.features(user, cands)))
            scores = learned if config.learner_only else base + learned
        order = ranker.top_k(scores + config.prior_weight * setup.prior[cands], len(cands))
        shown = cands[order[:SHOWN]]
        if explore.random() < config.explore:
            shown[explore.integers(SHOWN)] = cands[order[SHOWN + explore.integers(len(cands) - SHOWN)]]
        rel = setup.truth[user, shown]
        clicked = (u_exam < setup.curves[user, : len(shown)]) & (u_rel < rel)
        for slot, (item, c) in enumerate(zip(shown.tolist(), clicked.tolist(), strict=True)):
            world.logs[user].add(item, slot, c, float(day))
        scores_today.append(_ndcg(rel, setup.truth[user, cands]))
    world.ndcg_by_day[day].extend(scores_today)


def _refit(setup: _Setup, world: _World) -> None:
    logs = [buf.to_log(lambda items, u=u: setup.features(u, items)) for u, buf in enumerate(world.logs)]
    if world.learner == "naive":
        world.models = [fit_naive(log, l2=L2) if len(log) else None for log in logs]
        return
    if world.fleet_curve is None:  # the first refit: a pass on each user's own data gives the first fleet curve
        first = [fit_pbm(log, slots=SHOWN, l2=L2, max_iter=FIRST_FIT_ITERATIONS) for log in logs if len(log)]
        world.fleet_curve = pool_curve([f.stats for f in first], SHOWN)
    curve = world.fleet_curve
    fits: list[PBMFit | None] = []
    for u, log in enumerate(logs):
        if not len(log):
            fits.append(None)
            continue
        prev = world.fits[u]
        iters = DAILY_FIT_ITERATIONS if prev is not None else FIRST_FIT_ITERATIONS
        if world.learner == "global":
            fits.append(fit_pbm(log, slots=SHOWN, fixed_curve=curve, l2=L2, init=prev, max_iter=iters))
        else:
            prior = ExaminationPrior(curve, PRIOR_STRENGTH)
            fits.append(fit_pbm(log, slots=SHOWN, prior=prior, l2=L2, init=prev, max_iter=iters))
    world.fits = fits
    world.models = [f.relevance if f is not None else None for f in fits]
    world.fleet_curve = pool_curve([f.stats for f in fits if f is not None], SHOWN)


def _curve_errors(setup: _Setup, world: _World) -> tuple[dict[str, list[float]], list[str], int]:
    errors: dict[str, list[float]] = {"personal": [], "fleet": [], "click_rate": []}
    styles: list[str] = []
    undefined = 0
    for u, fit in enumerate(world.fits):
        if fit is None:
            continue
        truth = setup.curves[u]
        styles.append(_style(setup.personas[u]))
        errors["personal"].append(float(np.abs(fit.curve[1:] - truth[1:]).mean()))
        errors["fleet"].append(float(np.abs(world.fleet_curve[1:] - truth[1:]).mean()))
        log = world.logs[u].to_log(lambda items, u=u: setup.features(u, items))
        try:
            naive = click_rate_curve(log, SHOWN)
            errors["click_rate"].append(float(np.abs(naive[1:] - truth[1:]).mean()))
        except ValueError:  # no click in slot 0
            errors["click_rate"].append(float("nan"))
            undefined += 1
    return errors, styles, undefined


def run_position_bias(config: PositionBiasConfig) -> PositionBiasResult:
    """Blocking (CPU, a few seconds to a minute): call it from a worker thread inside an event loop."""
    t0 = time.perf_counter()
    setup = _setup(config)
    n_users = len(setup.personas)
    names = [name for name in LEARNERS if name in {*config.learners, "naive", "personal"}]
    worlds = {
        name: _World(name, [ImpressionBuffer() for _ in range(n_users)], [None] * n_users, [None] * n_users)
        for name in names
    }
    for world in worlds.values():
        world.ndcg_by_day = [[] for _ in range(config.days)]
        for day in range(config.days):
            for user in range(n_users):
                _serve(setup, world, user, day, config)
            _refit(setup, world)  # also after the last day: the curves are measured on the whole log
    last = {name: float(np.mean(w.ndcg_by_day[-1])) for name, w in worlds.items()}
    overall = {name: float(np.mean([x for day in w.ndcg_by_day for x in day])) for name, w in worlds.items()}

    errors, styles, undefined = _curve_errors(setup, worlds["personal"])
    style_names = ("skim", "deep", "typical")

    def mean_of(values: list[float], keep: list[bool]) -> float | None:
        picked = [v for v, k in zip(values, keep, strict=True) if k and not np.isnan(v)]
        return round(float(np.mean(picked)), 4) if picked else None

    everyone = [True] * len(styles)
    return PositionBiasResult(
        users=n_users,
        days=config.days,
        seed=config.seed,
        bundle=setup.release_id,
        sessions=sum(len(d) for d in worlds["naive"].ndcg_by_day),
        ndcg_at_10={k: round(v, 4) for k, v in last.items()},
        ndcg_at_10_all_days={k: round(v, 4) for k, v in overall.items()},
        ratio=round(last["personal"] / last["naive"], 4) if last["naive"] > 0 else 0.0,
        curve_error={k: mean_of(v, everyone) for k, v in errors.items()},
        curve_error_by_style={
            s: {k: mean_of(v, [x == s for x in styles]) for k, v in errors.items()} for s in style_names
        },
        users_by_style={s: styles.count(s) for s in style_names},
        click_rate_undefined=undefined,
        wall_s=round(time.perf_counter() - t0, 1),
    )


__all__ = ["LEARNERS", "PositionBiasConfig", "PositionBiasResult", "run_position_bias"]
