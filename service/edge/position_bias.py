"""Learning relevance from a device's own impression log despite position bias (COUPA's position selector).

A user clicks what they look at and like; what they look at depends on where it was shown. The position-based
click model (PBM; Craswell et al., WSDM 2008) writes that as

    P(click | user u, item x, slot k) = theta_u[k] * gamma_u(x)

with theta_u[k] the chance that u examines slot k (their *examination curve*) and gamma_u(x) the chance that u
finds x relevant. A learner that reads every unclicked impression as "not relevant" (the naive learner) learns
theta * gamma, not gamma: whatever it showed low looks bad, so it keeps showing it low. The corrected learner
separates the two by regression-EM (Wang et al., "Position Bias Estimation for Unbiased Learning to Rank in
Personal Search", WSDM 2018):

- E-step: for an unclicked impression, P(examined) = theta(1 - gamma) / (1 - theta gamma) and
  P(relevant) = (1 - theta) gamma / (1 - theta gamma); a click means both.
- M-step: gamma is a regression on the posterior relevance. Wang et al. sample binary labels from it for a
  GBDT; for the logistic model here the expected log-likelihood *is* the cross-entropy against the soft
  labels, so they are used directly (no sampling noise). theta: EM's update is expected examinations at k /
  impressions at k; here each slot's theta is maximised exactly given gamma instead (same fixed point, far
  fewer iterations when clicks are rare; see `_m_step_curve`).

**Personalised curves.** COUPA (position-aware preference with a personalised position selector) gives each
user their own attention over slots: some scroll deep, some never pass the third slot. One device's log is
small, so the user's curve is shrunk towards a fleet prior by the amount of that user's data: each slot's
theta is the mean of a Beta posterior with `strength` pseudo-impressions at the prior's value,
theta_u[k] = (E_u[k] + strength * prior[k]) / (N_u[k] + strength). With no impressions at k the prior
answers; with thousands the user's own rate does. The prior itself is pooled from devices' per-slot sufficient
statistics (`pool_curve`: two numbers per slot, never an impression), so no raw log leaves a device.

**Identification.** PBM only identifies theta up to a common factor (theta gamma = (theta / a)(a gamma)): the
top slot is pinned to theta[0] = 1, the usual convention, so curves are relative to the first slot.

**Relevance features.** gamma_u(x) = sigmoid(w . x + b), an L2-regularised logistic regression over features
the device has for every item it shows: the item's embedding from the device's own encoder, projected to a
few dimensions (plus, as the simulator does, the ranker's content score against the user's history). Not item
ids: a device sees most items once, so per-item counts never accumulate; not categories: `/v1/rank`
candidates carry only an id and a text. A few dozen features keep each Newton step O(n d^2) with d small and
the fit well-posed on the few dozen clicks a device logs in a week.

**Hostile input.** Logs arrive from a client: every array is checked (finite features, integer positions in
[0, MAX_POSITIONS), clicks 0/1, at most MAX_IMPRESSIONS rows, MAX_FEATURES columns and MAX_FEATURE_CELLS
values) and a violation is a ValueError naming it. EM and Newton iterations are capped, so a fit's memory and
time are bounded by the caps.

`ipw_mean` is the inverse-propensity estimator (Horvitz-Thompson) the same curve enables: a click at slot k
counts 1 / theta[k] relevant impressions. It is the one checked against the Open Bandit Dataset's published
figure (`simulators.obd_check`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MAX_POSITIONS = 500  # slots a curve covers (the rank API's candidates per request); position < MAX_POSITIONS
MAX_IMPRESSIONS = 100_000  # rows per fit: half a year of a heavy user's slates of ten
MAX_FEATURES = 128  # relevance features: a projected embedding and a few scores (the simulator uses 18)
MAX_FEATURE_CELLS = 4_000_000  # rows x features: 32 MB of float64, and a Newton step of at most ~5e8 flops
MAX_EM_ITERATIONS = 500
MAX_NEWTON_STEPS = 50
DEFAULT_L2 = 1.0  # ridge on the relevance weights (not the intercept), in units of one impression's loss
_EPS = 1e-9
_CLIP = 1e-6  # probabilities stay inside [_CLIP, 1 - _CLIP] so logs and ratios stay finite
_NEWTON_CURVE_STEPS = 8  # per M-step, warm-started from the current curve (a bisection where Newton overshoots)


# -- the impression log ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ImpressionLog:
    """One user's impressions: where each item was shown, whether it was clicked, and its features.

    Build it with `ImpressionLog.of(...)`, which validates; the fields are then trusted by every function here.
    """

    positions: np.ndarray  # (n,) int64, 0-based slot
    clicks: np.ndarray  # (n,) float64, 0.0 or 1.0
    features: np.ndarray  # (n, d) float64, finite

    @classmethod
    def of(cls, positions: object, clicks: object, features: object) -> ImpressionLog:
        """Validated copies of the three arrays; ValueError naming the first problem."""
        pos = np.asarray(positions)
        clk = np.asarray(clicks)
        x = np.asarray(features)
        if pos.ndim != 1 or clk.ndim != 1:
            raise ValueError(f"positions and clicks must be 1-d, got shapes {pos.shape} and {clk.shape}")
        n = pos.shape[0]
        if n > MAX_IMPRESSIONS:
            raise ValueError(f"{n} impressions: at most {MAX_IMPRESSIONS} per fit")
        if clk.shape[0] != n:
            raise ValueError(f"{n} positions but {clk.shape[0]} clicks")
        if x.ndim != 2 or x.shape[0] != n:
            raise ValueError(f"features must be ({n}, d), got shape {x.shape}")
        if x.shape[1] > MAX_FEATURES:
            raise ValueError(f"{x.shape[1]} features: at most {MAX_FEATURES}")
        if n * x.shape[1] > MAX_FEATURE_CELLS:
            raise ValueError(f"{n} impressions x {x.shape[1]} features: at most {MAX_FEATURE_CELLS} values per fit")
        if n and not (np.issubdtype(pos.dtype, np.integer) or np.issubdtype(pos.dtype, np.floating)):
            raise ValueError(f"positions must be numbers, got dtype {pos.dtype}")
        pos_f = pos.astype(np.float64, copy=False) if n else np.zeros(0)
        if n and (not np.isfinite(pos_f).all() or (pos_f != np.round(pos_f)).any()):
            raise ValueError("positions must be whole numbers (no NaN or fractions)")
        if n and (pos_f.min() < 0 or pos_f.max() >= MAX_POSITIONS):
            raise ValueError(f"positions must be in [0, {MAX_POSITIONS}), got {pos_f.min():g}..{pos_f.max():g}")
        try:
            clk_f = clk.astype(np.float64) if n else np.zeros(0)
            x_f = x.astype(np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"clicks and features must be numbers: {exc}") from None
        if n and not np.isin(clk_f, (0.0, 1.0)).all():
            raise ValueError("clicks must be 0 or 1 (no NaN)")
        if not np.isfinite(x_f).all():
            raise ValueError("features must be finite (no NaN or inf)")
        return cls(pos_f.astype(np.int64), clk_f, x_f)

    def __len__(self) -> int:
        return int(self.positions.shape[0])

    @property
    def n_features(self) -> int:
        return int(self.features.shape[1])

    def slots(self) -> int:
        """Slots covered by this log (highest position + 1), 0 when empty."""
        return int(self.positions.max()) + 1 if len(self) else 0


# -- curves ------------------------------------------------------------------------------------------------


def check_curve(curve: object, name: str = "curve") -> np.ndarray:
    """A validated examination curve: 1-d, 1..MAX_POSITIONS slots, every value finite and in (0, 1]."""
    c = np.asarray(curve, dtype=np.float64)
    if c.ndim != 1 or not 1 <= c.shape[0] <= MAX_POSITIONS:
        raise ValueError(f"{name} must be 1-d with 1..{MAX_POSITIONS} slots, got shape {c.shape}")
    if not np.isfinite(c).all() or (c <= 0).any() or (c > 1).any():
        raise ValueError(f"{name} values must be in (0, 1]")
    return c


@dataclass(frozen=True)
class ExaminationPrior:
    """The fleet's curve and how many pseudo-impressions per slot it is worth against a user's own data."""

    curve: np.ndarray  # (K,) in (0, 1]
    strength: float  # pseudo-impressions per slot; 0 = the user's own data only

    def __post_init__(self) -> None:
        object.__setattr__(self, "curve", check_curve(self.curve, "prior curve"))
        if not (np.isfinite(self.strength) and self.strength >= 0):
            raise ValueError("prior strength must be finite and >= 0")


@dataclass(frozen=True)
class SlotStats:
    """Per-slot sufficient statistics of one fit: what a device may share for the fleet prior (no impressions)."""

    examined: np.ndarray  # (K,) expected examinations (clicks + posterior examinations of unclicked ones)
    shown: np.ndarray  # (K,) impressions


def pool_curve(stats: list[SlotStats], slots: int, floor: float = 1e-3) -> np.ndarray:
    """The fleet curve: pooled expected examinations over pooled impressions per slot; slot 0 pinned to 1.

    A slot nobody was shown at takes the value of the slot before it (examination does not rise with depth)."""
    if not 1 <= slots <= MAX_POSITIONS:
        raise ValueError(f"slots must be in [1, {MAX_POSITIONS}]")
    examined = np.zeros(slots)
    shown = np.zeros(slots)
    for s in stats:
        k = min(slots, s.shown.shape[0])
        examined[:k] += s.examined[:k]
        shown[:k] += s.shown[:k]
    curve = np.ones(slots)
    for k in range(1, slots):
        curve[k] = examined[k] / shown[k] if shown[k] > 0 else curve[k - 1]
    return np.clip(curve, floor, 1.0)


# -- relevance: a weighted logistic regression with soft labels --------------------------------------------


@dataclass(frozen=True)
class RelevanceModel:
    """gamma(x) = sigmoid(weights . x + bias)."""

    weights: np.ndarray  # (d,)
    bias: float

    def logits(self, features: np.ndarray) -> np.ndarray:
        return np.asarray(features, dtype=np.float64) @ self.weights + self.bias

    def relevance(self, features: np.ndarray) -> np.ndarray:
        return _sigmoid(self.logits(features))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # stable for any finite z


def _soft_logistic(
    x: np.ndarray, y: np.ndarray, l2: float, init: RelevanceModel | None, steps: int, tol: float = 1e-6
) -> RelevanceModel:
    """Minimise sum_i CE(y_i, sigmoid(x_i . w + b)) + l2/2 |w|^2 by damped Newton steps from `init`."""
    n, d = x.shape
    xb = np.hstack([x, np.ones((n, 1))])  # (n, d + 1): the intercept last
    theta = np.zeros(d + 1) if init is None else np.append(init.weights, init.bias)
    if init is None and n:  # start the intercept at the labels' log-odds
        mean = float(np.clip(y.mean(), _CLIP, 1 - _CLIP))
        theta[-1] = np.log(mean / (1 - mean))
    ridge = np.full(d + 1, l2)
    ridge[-1] = _EPS  # the intercept is not shrunk (a tiny ridge keeps H invertible on an empty log)

    def loss(t: np.ndarray) -> float:
        z = xb @ t
        # CE with logits: log(1 + e^z) - y z, computed stably
        return float((np.logaddexp(0.0, z) - y * z).sum() + 0.5 * (ridge * t * t).sum())

    current = loss(theta)
    for _ in range(min(steps, MAX_NEWTON_STEPS)):
        p = _sigmoid(xb @ theta)
        grad = xb.T @ (p - y) + ridge * theta
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + np.diag(ridge)
        step = np.linalg.solve(hess, grad)
        t = 1.0
        while t > 1e-4:  # halve until the loss does not rise (Newton can overshoot on separable data)
            candidate = theta - t * step
            new = loss(candidate)
            if new <= current + 1e-12:
                break
            t *= 0.5
        else:
            break
        theta, improvement, current = candidate, current - new, new
        if improvement <= tol * max(1.0, abs(current)):
            break
    return RelevanceModel(weights=theta[:-1].copy(), bias=float(theta[-1]))


def fit_naive(log: ImpressionLog, *, l2: float = DEFAULT_L2) -> RelevanceModel:
    """The naive learner: every unclicked impression is a non-relevant item, wherever it was shown."""
    _check_l2(l2)
    return _soft_logistic(log.features, log.clicks, l2, None, MAX_NEWTON_STEPS)


def _check_l2(l2: float) -> None:
    if not (np.isfinite(l2) and l2 >= 0):
        raise ValueError("l2 must be finite and >= 0")


# -- the position-based click model by regression-EM -------------------------------------------------------


@dataclass(frozen=True)
class PBMFit:
    """A fitted PBM for one user: their examination curve, their relevance model, and the fit's facts."""

    curve: np.ndarray  # (K,) theta[k], theta[0] = 1
    relevance: RelevanceModel
    stats: SlotStats  # at the final E-step: the device's contribution to the fleet prior
    log_likelihood: float  # of the clicks under theta * gamma, per impression
    iterations: int
    converged: bool


def _posteriors(clicks: np.ndarray, theta_i: np.ndarray, gamma: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(P(examined | data), P(relevant | data), mean log-likelihood) per impression under PBM."""
    gamma = np.clip(gamma, _CLIP, 1 - _CLIP)
    theta_i = np.clip(theta_i, _CLIP, 1.0)
    p_click = np.clip(theta_i * gamma, _CLIP, 1 - _CLIP)
    miss = 1.0 - p_click
    examined = np.where(clicks > 0, 1.0, theta_i * (1.0 - gamma) / miss)
    relevant = np.where(clicks > 0, 1.0, (1.0 - theta_i) * gamma / miss)
    ll = float(np.mean(clicks * np.log(p_click) + (1 - clicks) * np.log(miss))) if clicks.size else 0.0
    return examined, relevant, ll


def fit_pbm(
    log: ImpressionLog,
    *,
    slots: int | None = None,
    prior: ExaminationPrior | None = None,
    fixed_curve: np.ndarray | None = None,
    l2: float = DEFAULT_L2,
    init: PBMFit | None = None,
    max_iter: int = 100,
    newton_steps: int = 2,
    tol: float = 1e-5,
) -> PBMFit:
    """Regression-EM for one user's log.

    - `prior`: shrink the user's curve towards the fleet's (personalised curve); None = their data alone.
    - `fixed_curve`: do not estimate a curve, use this one (the "global curve" learner: the fleet's curve
      for everyone); then only relevance is fitted.
    - `init`: warm start (yesterday's fit), so a daily refit needs few iterations.
    - `newton_steps`: Newton steps on the relevance model per EM iteration (a generalised EM: each M-step
      improves rather than maximises, which is enough for EM's monotone ascent and much cheaper).
    """
    _check_l2(l2)
    if not 1 <= max_iter <= MAX_EM_ITERATIONS:
        raise ValueError(f"max_iter must be in [1, {MAX_EM_ITERATIONS}]")
    if not 1 <= newton_steps <= MAX_NEWTON_STEPS:
        raise ValueError(f"newton_steps must be in [1, {MAX_NEWTON_STEPS}]")
    if prior is not None and fixed_curve is not None:
        raise ValueError("give a prior or a fixed curve, not both")
    k = slots if slots is not None else max(log.slots(), 1)
    if fixed_curve is not None:
        fixed = check_curve(fixed_curve, "fixed_curve")
        k = max(k, fixed.shape[0]) if slots is None else k
        if fixed.shape[0] < k:
            raise ValueError(f"fixed_curve covers {fixed.shape[0]} slots, the log needs {k}")
    if not 1 <= k <= MAX_POSITIONS or log.slots() > k:
        raise ValueError(f"slots must be in [max position + 1, {MAX_POSITIONS}], got {k}")
    if prior is not None and prior.curve.shape[0] < k:
        raise ValueError(f"the prior covers {prior.curve.shape[0]} slots, the log needs {k}")

    pos, clicks = log.positions, log.clicks
    shown = np.bincount(pos, minlength=k).astype(np.float64)
    if fixed_curve is not None:
        curve = fixed[:k].copy()
    elif init is not None and init.curve.shape[0] >= k:
        curve = init.curve[:k].copy()
    elif prior is not None:
        curve = prior.curve[:k].copy()
    else:
        curve = 1.0 / (1.0 + np.arange(k))  # an uninformed start; EM moves it
    curve[0] = 1.0
    model = init.relevance if init is not None and init.relevance.weights.shape[0] == log.n_features else None
    if model is None:
        model = _soft_logistic(log.features, clicks, l2, None, newton_steps)  # the naive fit as a start

    converged, ll, it = False, -np.inf, 0
    for it in range(1, max_iter + 1):  # noqa: B007 (the count is reported)
        gamma = model.relevance(log.features)
        _, relevant, new_ll = _posteriors(clicks, curve[pos], gamma)
        new_curve = curve if fixed_curve is not None else _m_step_curve(pos, clicks, gamma, curve, prior, k)
        model = _soft_logistic(log.features, relevant, l2, model, newton_steps)
        change = float(np.abs(new_curve - curve).max()) if k else 0.0
        curve = new_curve
        if change < tol and abs(new_ll - ll) < tol:
            converged, ll = True, new_ll
            break
        ll = new_ll
    gamma = model.relevance(log.features)
    examined, _, ll = _posteriors(clicks, curve[pos], gamma)
    stats = SlotStats(examined=np.bincount(pos, weights=examined, minlength=k), shown=shown)
    return PBMFit(curve=curve, relevance=model, stats=stats, log_likelihood=ll, iterations=it, converged=converged)


def _m_step_curve(
    pos: np.ndarray,
    clicks: np.ndarray,
    gamma: np.ndarray,
    curve: np.ndarray,
    prior: ExaminationPrior | None,
    k: int,
) -> np.ndarray:
    """The curve that maximises the log-likelihood (plus the prior's) for the current relevance model.

    Per slot, f(theta) = sum_i [c_i log theta + (1 - c_i) log(1 - theta gamma_i)] + a log theta + b log(1 - theta)
    with the prior's pseudo-observations a = strength * prior[k], b = strength * (1 - prior[k]). f is concave, so
    its maximiser is the root of the decreasing f' (or 1 if f' >= 0 there), found by safeguarded Newton steps
    for every slot at once, starting from the current curve. Plain EM's ratio update (expected examinations /
    impressions) has the same fixed point but crawls towards it when clicks are rare: with mean relevance g it
    moves theta by a factor of about 1 - g(1 - theta) per iteration, hundreds of iterations for a slot nobody
    looks at (an expectation-conditional-maximisation step, Meng & Rubin 1993). theta[0] = 1 (identification).
    """
    clicked = np.bincount(pos, weights=clicks, minlength=k)
    miss_w = (1.0 - clicks) * np.clip(gamma, _CLIP, 1 - _CLIP)  # each non-click's gamma_i
    a = np.zeros(k) if prior is None else prior.strength * prior.curve[:k]
    b = np.zeros(k) if prior is None else prior.strength * (1.0 - prior.curve[:k])
    has_data = (np.bincount(pos, minlength=k) > 0) | (a + b > 0)

    def derivatives(theta: np.ndarray) -> tuple[np.ndarray, np.ndarray]:  # f'(theta), f''(theta) per slot
        per = miss_w / (1.0 - theta[pos] * miss_w)
        one_minus = np.maximum(1.0 - theta, _EPS)
        grad = (clicked + a) / theta - np.bincount(pos, weights=per, minlength=k) - b / one_minus
        curv = -(clicked + a) / theta**2 - np.bincount(pos, weights=per * per, minlength=k) - b / one_minus**2
        return grad, curv

    lo, hi = np.full(k, _CLIP), np.full(k, 1.0 - _CLIP)
    top = derivatives(hi)[0] >= 0  # still rising at 1: theta = 1
    theta = np.clip(curve, lo, hi)
    for _ in range(_NEWTON_CURVE_STEPS):  # Newton inside a shrinking bracket; a step leaving it bisects
        grad, curv = derivatives(theta)
        lo = np.where(grad > 0, theta, lo)
        hi = np.where(grad > 0, hi, theta)
        step = theta - grad / np.minimum(curv, -_EPS)
        theta = np.where((step > lo) & (step < hi), step, 0.5 * (lo + hi))
    out = np.where(top, 1.0, theta)
    out = np.where(has_data, out, curve)  # a slot with no data and no prior keeps its value
    out = np.clip(out, _CLIP, 1.0)
    out[0] = 1.0
    return out


# -- naive curve and inverse propensity weighting ----------------------------------------------------------


def click_rate_curve(log: ImpressionLog, slots: int) -> np.ndarray:
    """The naive curve: click rate per slot relative to slot 0's. It is the examination curve only if what was
    shown did not depend on the slot, which a ranker's own log never satisfies (it puts its best first)."""
    if not 1 <= slots <= MAX_POSITIONS or log.slots() > slots:
        raise ValueError(f"slots must be in [max position + 1, {MAX_POSITIONS}]")
    shown = np.bincount(log.positions, minlength=slots).astype(np.float64)
    clicked = np.bincount(log.positions, weights=log.clicks, minlength=slots)
    rate = np.where(shown > 0, clicked / np.maximum(shown, 1.0), 0.0)
    if rate[0] <= 0:
        raise ValueError("no clicks at slot 0: the click-rate curve is undefined")
    return np.clip(rate / rate[0], _CLIP, 1.0)


def ipw_mean(rewards: object, propensities: object, target: object | None = None) -> float:
    """The inverse-propensity (Horvitz-Thompson) estimate of the mean reward under a target policy:
    mean_i(reward_i * target_i / propensity_i), with `target` 1 when not given.

    With propensity = theta[slot] and reward = click it is the mean relevance of the items shown; with the
    logging policy's action probability it is an off-policy value (Open Bandit Dataset). Unbiased when every
    propensity is the true positive probability; ValueError on NaN, non-positive propensities or a mismatch.
    """
    r = np.asarray(rewards, dtype=np.float64)
    p = np.asarray(propensities, dtype=np.float64)
    w = np.ones_like(r) if target is None else np.asarray(target, dtype=np.float64)
    if r.ndim != 1 or p.shape != r.shape or w.shape != r.shape:
        raise ValueError(f"rewards, propensities and target must be 1-d of one length: {r.shape}, {p.shape}, {w.shape}")
    if r.size == 0:
        raise ValueError("no rows")
    if r.size > MAX_IMPRESSIONS * 100:
        raise ValueError(f"{r.size} rows: at most {MAX_IMPRESSIONS * 100}")
    if not (np.isfinite(r).all() and np.isfinite(p).all() and np.isfinite(w).all()):
        raise ValueError("rewards, propensities and target must be finite (no NaN)")
    if (p <= 0).any() or (p > 1).any():
        raise ValueError("propensities must be in (0, 1]")
    if (w < 0).any():
        raise ValueError("target probabilities must be >= 0")
    return float(np.mean(r * w / p))
