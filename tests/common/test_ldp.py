"""LDP mechanisms: privacy (likelihood ratios, OpenDP's certificate), unbiasedness and variance against theory
with fixed seeds, interval coverage, the production (CSPRNG) path, the devices' randomized response against
OpenDP's, and the wire format."""

from __future__ import annotations

import importlib
import inspect
import math

import numpy as np
import pytest
from pydantic import ValidationError

from service.common.ldp import (
    GENRES,
    LATENCY_BUCKETS,
    METRICS,
    CellCounts,
    OLHPayload,
    TelemetryReport,
    consistent_interval,
    counts_from_support,
    encode_report,
    estimate_cell,
    estimate_metric,
    latency_bucket_of,
    max_report_shift,
    metric_precision,
    micro_epsilon,
    norm_sub,
    olh_g,
    olh_hash,
    olh_perturb,
    opendp_rr_certified_epsilon,
    opendp_rr_measurement,
    oue_perturb,
    probabilities,
    rr_keep_probability,
    rr_perturb,
    support,
    support_matrix_olh,
    support_matrix_rr,
    theoretical_variance,
    worst_case_ratio,
)

EPSILONS = [0.1, 0.3, 1.0, 2.0]
Z = 1.959963984540054


def test_metric_catalogue() -> None:
    assert len(GENRES) == 20 and "(no genres listed)" in GENRES and "Film-Noir" in GENRES
    assert LATENCY_BUCKETS == ("<5ms", "<10ms", "<20ms", "<50ms", ">=50ms")
    assert [latency_bucket_of(x) for x in (0.1, 5.0, 12, 49.9, 50, 900)] == [
        "<5ms",
        "<10ms",
        "<20ms",
        "<50ms",
        ">=50ms",
        ">=50ms",
    ]
    assert math.isclose(sum(m.default_epsilon for m in METRICS.values()), 1.0)
    assert micro_epsilon(0.1) + micro_epsilon(0.2) == micro_epsilon(0.3)


@pytest.mark.parametrize("mechanism", ["rr", "oue", "olh"])
@pytest.mark.parametrize("epsilon", EPSILONS)
def test_worst_case_likelihood_ratio_is_e_to_the_epsilon(mechanism: str, epsilon: float) -> None:
    assert worst_case_ratio(mechanism, epsilon) == pytest.approx(math.exp(epsilon), rel=1e-12)


RR_EPSILONS = sorted({*EPSILONS, 0.0, 0.01, 0.05, 5.0, 10.0, *(m.default_epsilon for m in METRICS.values())})


@pytest.mark.parametrize("epsilon", RR_EPSILONS)
def test_opendp_certifies_the_randomized_response(epsilon: float) -> None:
    """OpenDP's privacy map, applied to the keep probability devices sample (without OpenDP), certifies eps."""
    assert opendp_rr_certified_epsilon(epsilon) <= epsilon
    p = rr_keep_probability(epsilon)
    assert (p * 2**53).is_integer()  # what `random() < p` samples exactly from a 53-bit uniform
    assert 0 <= probabilities("rr", epsilon)[0] - p < 1e-9  # the estimator's p is unaffected


@pytest.mark.parametrize("epsilon", [0.3, 1.0])
def test_devices_randomized_response_is_opendps(epsilon: float) -> None:
    """Same mechanism: the devices' numpy sampler (OS CSPRNG) and OpenDP's sampler, at the same certified keep
    probability, both keep each input bit at that rate (5 sigma: false alarm < 1e-6 per comparison)."""
    n, p = 20_000, rr_keep_probability(epsilon)
    meas = opendp_rr_measurement(epsilon)
    bound = 5 * math.sqrt(p * (1 - p) / n)
    for bit in (True, False):
        ours = float(np.mean(rr_perturb(np.full(n, bit), epsilon) == bit))
        theirs = float(np.mean([meas(bit) == bit for _ in range(n)]))
        assert abs(ours - p) < bound and abs(theirs - p) < bound, (bit, ours, theirs, p)


def test_olh_hash_collides_with_probability_one_over_g() -> None:
    rng = np.random.default_rng(7)
    seeds = rng.integers(0, 1 << 62, size=200_000)
    for g in (2, 3, 5):
        a = olh_hash(seeds, np.full(len(seeds), 3), g)
        b = olh_hash(seeds, np.full(len(seeds), 11), g)
        rate = float(np.mean(a == b))
        assert abs(rate - 1 / g) < 5 * math.sqrt((1 / g) * (1 - 1 / g) / len(seeds))


def _simulate(mechanism: str, epsilon: float, truth: np.ndarray, d: int, rng: np.random.Generator) -> np.ndarray:
    """Support matrix (n, d) of one simulated round, through the same encoders devices use."""
    if mechanism == "rr":
        return support_matrix_rr(rr_perturb(truth.astype(bool), epsilon, rng))
    if mechanism == "oue":
        return oue_perturb(truth, d, epsilon, rng)
    seeds, values = olh_perturb(truth, epsilon, rng)
    return support_matrix_olh(seeds, values, d, epsilon)


@pytest.mark.parametrize(
    ("mechanism", "epsilon"), [("rr", 0.5), ("oue", 0.3), ("oue", 1.0), ("olh", 0.3), ("olh", 2.0)]
)
def test_estimator_is_unbiased_with_the_theoretical_variance(mechanism: str, epsilon: float) -> None:
    """300 seeded rounds of 2,000 devices: mean within 4 standard errors of the truth; empirical variance
    within 25% of s(1-s)/(n(p-q)^2) (the sampling sd of a variance from 300 rounds is ~8%)."""
    rng = np.random.default_rng(12345)
    n, rounds = 2000, 300
    d = 2 if mechanism == "rr" else 6
    probs = np.array([0.7, 0.3]) if d == 2 else np.array([0.4, 0.25, 0.15, 0.1, 0.06, 0.04])
    truth = rng.choice(d, size=n, p=probs)
    f_true = np.bincount(truth, minlength=d) / n
    estimates, plugin = [], []
    for _ in range(rounds):
        sup = _simulate(mechanism, epsilon, truth, d, rng)
        f, v = estimate_cell(CellCounts(mechanism, epsilon, n, counts_from_support(sup)))  # type: ignore[arg-type]
        estimates.append(f)
        plugin.append(v)
    est = np.array(estimates)
    theory = theoretical_variance(mechanism, epsilon, f_true, n)  # type: ignore[arg-type]
    assert np.all(np.abs(est.mean(axis=0) - f_true) < 4 * np.sqrt(theory / rounds))
    ratio = est.var(axis=0, ddof=1) / theory
    assert np.all((ratio > 0.75) & (ratio < 1.33)), ratio
    assert np.allclose(np.mean(plugin, axis=0), theory, rtol=0.05)  # the plug-in variance is right on average


def test_oue_beats_symmetric_encoding_as_theory_says() -> None:
    """The reason OUE is hand-written: at eps=1, its variance is below symmetric unary encoding's."""
    e = math.exp(1.0)
    p_sue, q_sue = math.sqrt(e) / (math.sqrt(e) + 1), 1 / (math.sqrt(e) + 1)
    p, q = probabilities("oue", 1.0)
    assert q * (1 - q) / (p - q) ** 2 < q_sue * (1 - q_sue) / (p_sue - q_sue) ** 2


def test_confidence_intervals_cover_the_truth() -> None:
    """200 seeded rounds, two cells (OUE and OLH) combined: 95% intervals cover the truth ~95% of the time."""
    rng = np.random.default_rng(99)
    spec = METRICS["latency_bucket"]
    n = 3000
    truth = rng.choice(spec.d, size=n, p=[0.1, 0.3, 0.3, 0.2, 0.1])
    f_true = np.bincount(truth, minlength=spec.d) / n
    half = n // 2
    covered = total = 0
    for _ in range(200):
        oue = oue_perturb(truth[:half], spec.d, 0.5, rng)
        seeds, values = olh_perturb(truth[half:], 0.5, rng)
        cells = [
            CellCounts("oue", 0.5, half, counts_from_support(oue)),
            CellCounts("olh", 0.5, n - half, counts_from_support(support_matrix_olh(seeds, values, spec.d, 0.5))),
        ]
        for i, e in enumerate(estimate_metric(spec, cells)):
            covered += e.ci_low <= f_true[i] <= e.ci_high
            total += 1
    assert 0.92 <= covered / total <= 0.98


def test_norm_sub_is_one_shift_floored_at_zero_that_sums_to_one() -> None:
    rng = np.random.default_rng(5)
    for _ in range(200):
        raw = rng.normal(0.05, 0.2, size=int(rng.integers(2, 25)))
        f = norm_sub(raw)
        assert np.all(f >= 0) and f.sum() == pytest.approx(1.0, abs=1e-12)
        kept = f > 0
        shifts = f[kept] - raw[kept]
        assert np.ptp(shifts) < 1e-12  # every kept category moved by the same delta
        assert np.all(raw[~kept] + shifts[0] <= 1e-12)  # and the floored ones would have gone negative
        # the projection onto the simplex: no point of a coarse grid on it is closer (d = 3 only)
        if raw.size == 3:
            grid = [(a / 50, b / 50, 1 - (a + b) / 50) for a in range(51) for b in range(51 - a)]
            best = min(float(np.sum((np.array(g) - raw) ** 2)) for g in grid)
            assert float(np.sum((f - raw) ** 2)) <= best + 1e-12
    assert norm_sub(np.array([0.2, 0.3, 0.5])) == pytest.approx([0.2, 0.3, 0.5])  # already consistent: unchanged
    assert norm_sub(np.array([1.377, -0.121])) == pytest.approx([1.0, 0.0])  # the figures of issue 13
    for bad in (np.array([]), np.array([np.nan, 0.5]), np.zeros((2, 2))):
        with pytest.raises(ValueError):
            norm_sub(bad)


def test_released_estimates_are_consistent_and_inside_their_intervals() -> None:
    """Small cells (the demo's case): raw estimates fall below 0 and above 1, released ones never do."""
    rng = np.random.default_rng(11)
    raw_outside = 0
    for metric, mechanism in [("top_item_clicked", "rr"), ("latency_bucket", "oue"), ("top_genre", "olh")]:
        spec = METRICS[metric]
        for _ in range(50):
            truth = rng.choice(spec.d, size=60)
            if mechanism == "rr":
                sup = support_matrix_rr(rr_perturb(truth.astype(bool), 0.4, rng))
            elif mechanism == "oue":
                sup = oue_perturb(truth, spec.d, 0.3, rng)
            else:
                seeds, values = olh_perturb(truth, 0.3, rng)
                sup = support_matrix_olh(seeds, values, spec.d, 0.3)
            est = estimate_metric(spec, [CellCounts(mechanism, 0.3 if mechanism != "rr" else 0.4, 60,
                                                    counts_from_support(sup))])  # fmt: skip
            assert sum(e.estimate for e in est) == pytest.approx(1.0, abs=1e-9)
            for e in est:
                assert 0.0 <= e.ci_low <= e.estimate <= e.ci_high <= 1.0
                raw_outside += not 0.0 <= e.raw_estimate <= 1.0
    assert raw_outside > 0  # the case being guarded against does occur with these sizes


def test_the_interval_only_widens_to_contain_the_consistent_estimate() -> None:
    assert consistent_interval(0.5, 0.05, 0.5) == pytest.approx((0.5 - Z * 0.05, 0.5 + Z * 0.05))
    assert consistent_interval(0.9, 0.1, 0.9) == pytest.approx((0.9 - Z * 0.1, 1.0))  # clipped to [0, 1]
    # Wholly outside the bounds: not a point ([1, 1] or [0, 0] would claim certainty) but the same width at the bound.
    assert consistent_interval(1.377, 0.1, 1.0) == pytest.approx((1.0 - 2 * Z * 0.1, 1.0))
    assert consistent_interval(-0.121, 0.01, 0.0) == pytest.approx((0.0, 2 * Z * 0.01))
    assert consistent_interval(-3.0, 1.0, 0.0) == (0.0, 1.0)  # and never beyond the other bound
    assert consistent_interval(0.3, 0.01, 0.2) == pytest.approx((0.2, 0.3 + Z * 0.01))  # widened down to 0.2


@pytest.mark.parametrize(
    ("metric", "mechanism"), [("top_item_clicked", "rr"), ("latency_bucket", "oue"), ("top_genre", "olh")]
)
def test_production_randomness_is_unbiased(metric: str, mechanism: str) -> None:
    """No seed: the OS CSPRNG, as on devices. Bounds are 5 sigma (false alarm < 1e-6)."""
    spec = METRICS[metric]
    n, eps = 4000, 1.0
    value = spec.categories[1]
    reports = [encode_report(metric, value, model_version="m-1", day="2025-01-01", epsilon=eps) for _ in range(n)]
    assert len({r.report_id for r in reports}) == n
    counts = [0] * spec.d
    for r in reports:
        for i in support(r):
            counts[i] += 1
    f, _ = estimate_cell(CellCounts(mechanism, eps, n, tuple(counts)))  # type: ignore[arg-type]
    f_true = np.zeros(spec.d)
    f_true[1] = 1.0
    sd = np.sqrt(theoretical_variance(mechanism, eps, f_true, n))  # type: ignore[arg-type]
    assert np.all(np.abs(f - f_true) < 5 * sd)


def test_seeded_encoding_is_reproducible() -> None:
    a = encode_report("top_genre", "War", model_version="m", day="2025-01-01", rng=np.random.default_rng(5))
    b = encode_report("top_genre", "War", model_version="m", day="2025-01-01", rng=np.random.default_rng(5))
    assert a == b


def test_reports_carry_no_raw_value() -> None:
    for metric, value in (("top_genre", "Documentary"), ("latency_bucket", "<20ms"), ("top_item_clicked", True)):
        r = encode_report(metric, value, model_version="m-1", day="2025-01-01")
        wire = r.model_dump_json()
        assert set(r.model_dump()) == {"report_id", "metric", "mechanism", "epsilon", "model_version", "day", "payload"}
        if isinstance(value, str):
            assert value not in wire


def test_wire_validation() -> None:
    good = encode_report("top_genre", "War", model_version="m-1", day="2025-01-01", mechanism="oue").model_dump(
        mode="json"
    )
    TelemetryReport.model_validate(good)
    for bad in (
        {**good, "payload": {"bits": "1" * 19}},
        {**good, "mechanism": "olh"},
        {**good, "payload": {"bits": "2" * 20}},
        {**good, "epsilon": 0.015},
        {**good, "epsilon": 0.0},
        {**good, "extra": 1},
    ):
        with pytest.raises(ValidationError):
            TelemetryReport.model_validate(bad)
    with pytest.raises(ValueError, match="not a category"):
        encode_report("top_genre", "Space Opera", model_version="m", day="2025-01-01")
    with pytest.raises(ValidationError, match="olh value"):
        TelemetryReport.model_validate(
            {**good, "mechanism": "olh", "payload": OLHPayload(seed=1, value=olh_g(0.3)).model_dump()}
        )


@pytest.mark.parametrize("seam", ["catalogue", "mechanisms", "wire", "estimators"])
def test_each_seam_exports_what_it_defines(seam: str) -> None:
    """`service.common.ldp` re-exports each module's `__all__`: a public function or class left out of it would
    silently vanish from the package's surface."""
    module = importlib.import_module(f"service.common.ldp.{seam}")
    defined = {
        n
        for n, v in vars(module).items()
        if not n.startswith("_") and (inspect.isfunction(v) or inspect.isclass(v)) and v.__module__ == module.__name__
    }
    assert defined <= set(module.__all__)
    package = importlib.import_module("service.common.ldp")
    assert all(getattr(package, n) is getattr(module, n) for n in module.__all__)


def test_cells_pool_by_precision_not_by_report_count() -> None:
    """Issue 22: 40 honest randomized-response reports at epsilon 0.4 (5 of them clicks) and one device's 50
    reports `bit=1` at epsilon 0.01 pooled by count gave a raw estimate of 55.9 (released: 1.000). By precision
    the 0.01 cell weighs what 0.03 honest reports do, and the estimate stays near the honest one."""
    spec = METRICS["top_item_clicked"]
    rng = np.random.default_rng(3)
    honest = rr_perturb(np.arange(40) % 8 == 0, 0.4, rng)
    cells = [
        CellCounts("rr", 0.4, 40, counts_from_support(support_matrix_rr(honest))),
        CellCounts("rr", 0.01, 50, (0, 50)),
    ]
    alone = {e.category: e for e in estimate_metric(spec, cells[:1])}
    pooled = {e.category: e for e in estimate_metric(spec, cells)}
    assert abs(pooled["clicked"].raw_estimate - alone["clicked"].raw_estimate) < 0.1  # by count: +55
    assert pooled["clicked"].estimate < 0.5
    # the weights are what the module says: n (p - q)^2 / (q (1 - q))
    p, q = probabilities("rr", 0.01)
    assert metric_precision(cells[1:]) == pytest.approx(50 * (p - q) ** 2 / (q * (1 - q)))


@pytest.mark.parametrize(
    ("metric", "mechanism"), [("top_item_clicked", "rr"), ("latency_bucket", "oue"), ("top_genre", "olh")]
)
def test_one_report_moves_an_estimate_at_most_max_report_shift(metric: str, mechanism) -> None:
    """The bound the README states, checked against its definition: for random honest groups, replace one
    report by every report a device could send instead (every payload); no category's unbiased estimate moves
    by more than `max_report_shift`, the consistent ones by more than sqrt(d) times it, and some move reaches
    the bound (so it is the maximum, not a loose guess)."""
    spec = METRICS[metric]
    eps = spec.default_epsilon
    rng = np.random.default_rng(8)
    reached = 0.0
    for n in (3, 20, 100):
        truth = rng.choice(spec.d, size=n)
        if mechanism == "rr":
            sup = support_matrix_rr(rr_perturb(truth.astype(bool), eps, rng))
        elif mechanism == "oue":
            sup = oue_perturb(truth, spec.d, eps, rng)
        else:
            seeds, values = olh_perturb(truth, eps, rng)
            sup = support_matrix_olh(seeds, values, spec.d, eps)
        rest = np.asarray(sup[1:], dtype=int).sum(axis=0)
        # every support set one report can have: a bit (rr), any bit vector (oue), any hash bucket (olh)
        options = [np.asarray(row, dtype=int) for row in np.ndindex(*(2,) * spec.d)] if spec.d <= 5 else []
        if mechanism == "rr":
            options = [np.array([1, 0]), np.array([0, 1])]
        elif mechanism == "olh":
            options = [np.asarray(support_matrix_olh(np.array([s]), np.array([v]), spec.d, eps)[0], dtype=int)
                       for s in range(20) for v in range(olh_g(eps))]  # fmt: skip
        ests = []
        for o in options:
            cell = CellCounts(mechanism, eps, n, tuple(int(x) for x in rest + o))
            ests.append(estimate_metric(spec, [cell]))
        bound = max_report_shift(mechanism, eps, metric_precision([CellCounts(mechanism, eps, n, (0,) * spec.d)]))
        assert bound == pytest.approx(1 / (n * (probabilities(mechanism, eps)[0] - probabilities(mechanism, eps)[1])))
        for a in ests:
            for b in ests:
                for ea, eb in zip(a, b, strict=True):
                    move = abs(ea.raw_estimate - eb.raw_estimate)
                    assert move <= bound * (1 + 1e-9)
                    assert abs(ea.estimate - eb.estimate) <= math.sqrt(spec.d) * bound * (1 + 1e-9)
                    reached = max(reached, move / bound)
    assert reached == pytest.approx(1.0)
