"""Cloud-side LDP estimation: which categories a report supports, unbiased per-cell frequencies and variances,
their pooling across cells by precision, the consistent (Norm-Sub) estimate with its 95% interval, and the most
one report can move an estimate.

Precision: a cell of n reports by a mechanism with (p, q) has, for a category nobody holds, the variance
q (1 - q) / (n (p - q)^2) (the variance at f = 0; it depends on the mechanism, epsilon and n only, never on
the data). Its inverse, n (p - q)^2 / (q (1 - q)), is the cell's *precision*; cells are pooled with weights
proportional to it (inverse-variance weighting). Weights that do not depend on the reports keep the pooled
estimate unbiased, and a cell at a tiny epsilon (p - q ~ eps / 2) weighs next to nothing, however many reports
it holds: pooling by report count let 50 reports at epsilon 0.01 outweigh an honest fleet (issue 22).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from service.common.ldp.catalogue import METRICS, Mechanism, MetricSpec
from service.common.ldp.mechanisms import olh_g, olh_hash, probabilities
from service.common.ldp.wire import OUEPayload, RRPayload, TelemetryReport

__all__ = [
    "Z_95",
    "CategoryEstimate",
    "CellCounts",
    "cell_precision",
    "cells_from_reports",
    "consistent_interval",
    "counts_from_support",
    "estimate_cell",
    "estimate_metric",
    "max_report_shift",
    "metric_precision",
    "norm_sub",
    "report_precision",
    "support",
    "support_matrix_olh",
    "support_matrix_rr",
    "theoretical_variance",
]

Z_95 = 1.959963984540054  # two-sided 95% normal quantile


def support(report: TelemetryReport) -> tuple[int, ...]:
    """Category indices this report supports (the C_v it adds 1 to)."""
    spec = METRICS[report.metric]
    pl = report.payload
    if isinstance(pl, RRPayload):
        return (pl.bit,)
    if isinstance(pl, OUEPayload):
        return tuple(i for i, c in enumerate(pl.bits) if c == "1")
    hashed = olh_hash(np.array([pl.seed]), np.arange(spec.d)[None, :], olh_g(report.epsilon))[0]
    return tuple(int(i) for i in np.flatnonzero(hashed == pl.value))


def support_matrix_rr(reported: np.ndarray) -> np.ndarray:
    """(n, 2) support of reported bits: category 1 if the bit is set, else category 0."""
    reported = np.asarray(reported, dtype=bool)
    return np.stack([~reported, reported], axis=1)


def support_matrix_olh(seeds: np.ndarray, values: np.ndarray, d: int, epsilon: float) -> np.ndarray:
    """(n, d) support of OLH reports, the vectorised form of `support` (simulations)."""
    hashed = olh_hash(seeds, np.broadcast_to(np.arange(d), (len(seeds), d)), olh_g(epsilon))
    return hashed == np.asarray(values)[:, None]


@dataclass(frozen=True)
class CellCounts:
    """Aggregate of one (metric, model version, day, mechanism, epsilon) cell: n reports and support counts."""

    mechanism: Mechanism
    epsilon: float
    n: int
    counts: tuple[int, ...]


@dataclass(frozen=True)
class CategoryEstimate:
    category: str
    estimate: float  # consistent (Norm-Sub): non-negative, and a metric's estimates sum to one
    std_error: float  # of the unbiased estimate
    ci_low: float  # the unbiased estimate's 95% interval, clipped to [0, 1], widened to contain `estimate`
    ci_high: float
    raw_estimate: float  # unbiased, so it may fall outside [0, 1]: for analysts who pool or re-weight


def norm_sub(raw: np.ndarray) -> np.ndarray:
    """Norm-Sub (Wang et al., "Locally Differentially Private Frequency Estimation with Consistency", NDSS
    2020): add one constant delta to every estimate and floor at zero, with delta chosen so the result sums to
    one, i.e. the Euclidean projection onto the probability simplex (sort-based, Duchi et al. 2008).

    Hand-written because it is a dozen lines of numpy and none of our dependencies offers it; tests check it
    against its definition (sum, non-negativity, one shared shift) and against a brute-force search."""
    f = np.asarray(raw, dtype=np.float64)
    if f.ndim != 1 or f.size == 0 or not np.all(np.isfinite(f)):
        raise ValueError("norm_sub needs a non-empty, finite vector")
    u = np.sort(f)[::-1]
    css = np.cumsum(u)
    j = np.arange(1, f.size + 1)
    rho = int(np.nonzero(u + (1.0 - css) / j > 0)[0][-1]) + 1
    delta = (1.0 - css[rho - 1]) / rho
    return np.maximum(f + delta, 0.0)


def consistent_interval(
    raw: float, std_error: float, consistent: float, bounds: tuple[float, float] = (0.0, 1.0)
) -> tuple[float, float]:
    """The 95% normal interval of the unbiased estimate, clipped to `bounds` ([0, 1] for a frequency, [-1, 1]
    for a difference of two), then widened (if need be) to contain the consistent estimate: it never covers
    less than the unbiased interval, and never lies beside its own estimate.

    When the unbiased interval lies wholly outside the bounds (a raw estimate of -0.121 +- 0.02 for a
    frequency), clipping would leave a point, [0, 0], which claims a certainty the reports do not give; the
    interval keeps its width instead, anchored at the bound it crossed ([0, 0.039])."""
    lo_bound, hi_bound = bounds
    half = Z_95 * std_error
    lo, hi = raw - half, raw + half
    if hi < lo_bound:
        lo, hi = lo_bound, lo_bound + 2 * half
    elif lo > hi_bound:
        lo, hi = hi_bound - 2 * half, hi_bound
    lo, hi = float(np.clip(lo, *bounds)), float(np.clip(hi, *bounds))
    return min(lo, consistent), max(hi, consistent)


def estimate_cell(cell: CellCounts) -> tuple[np.ndarray, np.ndarray]:
    """Unbiased frequencies and plug-in variances of one cell."""
    if cell.n <= 0:
        raise ValueError("cannot estimate from zero reports")
    p, q = probabilities(cell.mechanism, cell.epsilon)
    s = np.asarray(cell.counts, dtype=np.float64) / cell.n
    return (s - q) / (p - q), s * (1 - s) / (cell.n * (p - q) ** 2)


def theoretical_variance(mechanism: Mechanism, epsilon: float, f: np.ndarray, n: int) -> np.ndarray:
    """Exact Var(f_hat) for true frequencies f and n reports: s (1 - s) / (n (p - q)^2), s = q + f (p - q)."""
    p, q = probabilities(mechanism, epsilon)
    s = q + np.asarray(f, dtype=np.float64) * (p - q)
    return s * (1 - s) / (n * (p - q) ** 2)


def report_precision(mechanism: Mechanism, epsilon: float) -> float:
    """The precision one report adds to its cell: (p - q)^2 / (q (1 - q)) (module docstring)."""
    p, q = probabilities(mechanism, epsilon)
    return (p - q) ** 2 / (q * (1 - q))


def cell_precision(cell: CellCounts) -> float:
    """n (p - q)^2 / (q (1 - q)): the inverse of the cell's variance at f = 0, its weight when cells pool."""
    return cell.n * report_precision(cell.mechanism, cell.epsilon)


def metric_precision(cells: Iterable[CellCounts]) -> float:
    """The precision of a pooled estimate: the sum of its cells' (they are independent)."""
    return sum(cell_precision(c) for c in cells if c.n > 0)


def max_report_shift(mechanism: Mechanism, epsilon: float, precision: float) -> float:
    """The most one report (by `mechanism` at `epsilon`) can move any category's unbiased estimate of a pooled
    estimate of total `precision`, compared with any other report it could have sent in its place.

    A report changes its cell's support count C_v by at most 1, so its cell's f_v by 1 / (n (p - q)), and the
    pooled f_v = sum_c w_c f_c / sum_c w_c by (n k / W) / (n (p - q)) = k / (W (p - q)) = (p - q) / (q (1 - q) W)
    with k = report_precision and W = `precision`. For a group of one mechanism this is 1 / (n (p - q)): Cao,
    Jia and Gong's maximal gain of one fake user (USENIX Security 2021), for the one report a device may send.
    The consistent (Norm-Sub) estimate is a Euclidean projection of the unbiased vector, which never lengthens
    a move, so each of its entries moves at most sqrt(d) times this (the L2 norm of a move of d entries)."""
    if precision <= 0:
        raise ValueError("precision must be positive")
    p, q = probabilities(mechanism, epsilon)
    return (p - q) / (q * (1 - q) * precision)


def estimate_metric(spec: MetricSpec, cells: Iterable[CellCounts]) -> list[CategoryEstimate]:
    """Combine cells (different mechanisms or epsilons) into one estimate per category.

    Each cell estimates the frequency among its own reports; the fleet frequency is their precision-weighted
    mean, sum(w_c f_c) / W with w_c = `cell_precision` and W their sum, whose variance is sum(w_c^2 Var_c) / W^2
    (cells are independent). That unbiased vector can have negative entries and need not sum to one; what is
    shown is its Norm-Sub post-processing (free of privacy cost: it reads only the released numbers), with the
    unbiased one kept beside it.
    """
    cells = [c for c in cells if c.n > 0]
    if not cells:
        raise ValueError("no reports")
    total = metric_precision(cells)
    est = np.zeros(spec.d)
    var = np.zeros(spec.d)
    for c in cells:
        if len(c.counts) != spec.d:
            raise ValueError(f"cell for {spec.name} has {len(c.counts)} counts, expected {spec.d}")
        f, v = estimate_cell(c)
        w = cell_precision(c)
        est += w * f
        var += w**2 * v
    est /= total
    se = np.sqrt(var) / total
    fair = norm_sub(est)
    out = []
    for i, cat in enumerate(spec.categories):
        lo, hi = consistent_interval(float(est[i]), float(se[i]), float(fair[i]))
        out.append(
            CategoryEstimate(
                category=cat,
                estimate=float(fair[i]),
                std_error=float(se[i]),
                ci_low=lo,
                ci_high=hi,
                raw_estimate=float(est[i]),
            )
        )
    return out


def counts_from_support(support_rows: np.ndarray) -> tuple[int, ...]:
    return tuple(int(x) for x in np.asarray(support_rows).sum(axis=0))


def cells_from_reports(reports: Sequence[TelemetryReport]) -> dict[tuple[str, str, float], CellCounts]:
    """Reference aggregation of reports into cells keyed (metric, mechanism, epsilon); tests and simulations."""
    acc: dict[tuple[str, str, float], list[int]] = {}
    for r in reports:
        key = (r.metric, r.mechanism, r.epsilon)
        counts = acc.setdefault(key, [0] * (METRICS[r.metric].d + 1))
        counts[0] += 1
        for i in support(r):
            counts[i + 1] += 1
    return {
        k: CellCounts(mechanism=k[1], epsilon=k[2], n=v[0], counts=tuple(v[1:]))  # type: ignore[arg-type]
        for k, v in acc.items()
    }
