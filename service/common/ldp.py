"""Local differential privacy for fleet metrics: the metrics, the device-side encoders and the cloud-side
estimators in one module, so that both sides agree on every probability.

Every mechanism here is a "pure" frequency oracle (Wang et al., *Locally Differentially Private Protocols for
Frequency Estimation*, USENIX Security 2017). A report *supports* a set of categories; with

    p = P(report supports v | the device's true value is v)
    q = P(report supports v | the device's true value is not v)

the share s_v of reports supporting v has expectation q + f_v (p - q), so

    f_hat_v = (C_v / n - q) / (p - q)                          (unbiased)
    Var(f_hat_v) = s_v (1 - s_v) / (n (p - q)^2)               (exact: C_v is a sum of n Bernoullis)

and the plug-in estimate of that variance (s_v := C_v / n) gives the 95% interval.

Mechanisms:
- ``rr``  randomized response (Warner 1965) for binary metrics: keep the true bit with p = e^eps / (1 + e^eps).
  Sampled by OpenDP's ``make_randomized_response_bool``, whose privacy map certifies eps.
- ``oue`` optimized unary encoding: one bit per category; the true category's bit is 1 with p = 1/2, every
  other bit is 1 with q = 1 / (e^eps + 1). Hand-written: OpenDP (0.16) offers only the *symmetric* bit-vector
  randomized response (basic RAPPOR), whose variance is worse; OUE's asymmetric flip is what makes it optimal.
- ``olh`` optimized local hashing: hash the value into g = round(e^eps + 1) buckets with a per-report random
  pairwise-independent hash, then randomized response over the g buckets (p = e^eps / (e^eps + g - 1),
  q = 1/g). Hand-written: OpenDP has no local-hashing frequency oracle.

Randomness: with ``rng=None`` (devices) draws come from the OS CSPRNG (``os.urandom``) or OpenDP; passing a
seeded ``numpy.random.Generator`` is for simulations and tests only, where reproducibility is the point.

A report travels as a `TelemetryReport`: report id, metric, mechanism, epsilon, model version, day and the
encoded payload; nothing else (``extra="forbid"`` on both sides).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Mechanism = Literal["rr", "oue", "olh"]
MECHANISMS: tuple[Mechanism, ...] = ("rr", "oue", "olh")

MIN_EPSILON = 0.01
MAX_EPSILON = 4.0
MAX_REPORTS_PER_BATCH = 500
Z_95 = 1.959963984540054  # two-sided 95% normal quantile

# OLH hash family h_{a,b}(x) = ((a x + b) mod P) mod g (Carter-Wegman), P prime; a, b come from a 62-bit seed.
# Pairwise independent up to O(1/P) ~ 5e-10, far below any sampling error here.
OLH_PRIME = (1 << 31) - 1
OLH_SEED_BITS = 62

# The 20 MovieLens genres (ml-latest-small), in the order of the OUE bit vector.
GENRES: tuple[str, ...] = (
    "(no genres listed)",
    "Action",
    "Adventure",
    "Animation",
    "Children",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "IMAX",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
LATENCY_BUCKETS: tuple[str, ...] = ("<5ms", "<10ms", "<20ms", "<50ms", ">=50ms")
_LATENCY_EDGES_MS = (5.0, 10.0, 20.0, 50.0)


@dataclass(frozen=True)
class MetricSpec:
    """A fleet metric: its categories (binary metrics have two), allowed mechanisms and default epsilon.

    The default epsilons of all metrics add up to the default daily budget (1.0), so a device reporting each
    metric once a day spends exactly its budget.
    """

    name: str
    categories: tuple[str, ...]
    mechanisms: tuple[Mechanism, ...]
    default_mechanism: Mechanism
    default_epsilon: float
    description: str

    @property
    def d(self) -> int:
        return len(self.categories)

    def index(self, value: str | bool) -> int:
        """Category index of a device-side value (a category name, or a bool for binary metrics)."""
        if isinstance(value, bool):
            if self.d != 2:
                raise ValueError(f"metric {self.name} is not binary; pass a category name")
            return int(value)
        try:
            return self.categories.index(value)
        except ValueError:
            raise ValueError(f"{value!r} is not a category of metric {self.name}") from None


METRICS: dict[str, MetricSpec] = {
    spec.name: spec
    for spec in (
        MetricSpec(
            name="top_item_clicked",
            categories=("not_clicked", "clicked"),
            mechanisms=("rr",),
            default_mechanism="rr",
            default_epsilon=0.4,
            description="the user clicked the top-ranked item",
        ),
        MetricSpec(
            name="latency_bucket",
            categories=LATENCY_BUCKETS,
            mechanisms=("oue", "olh"),
            default_mechanism="oue",
            default_epsilon=0.3,
            description="on-device rank latency bucket",
        ),
        MetricSpec(
            name="top_genre",
            categories=GENRES,
            mechanisms=("oue", "olh"),
            default_mechanism="olh",
            default_epsilon=0.3,
            description="the user's top interest among the MovieLens genres",
        ),
    )
}
MetricName = Literal["top_item_clicked", "latency_bucket", "top_genre"]


def latency_bucket_of(ms: float) -> str:
    for edge, name in zip(_LATENCY_EDGES_MS, LATENCY_BUCKETS, strict=False):
        if ms < edge:
            return name
    return LATENCY_BUCKETS[-1]


def micro_epsilon(epsilon: float) -> int:
    """Budgets are kept in integer millionths of epsilon so that sums never drift (0.1 + 0.2 != 0.3)."""
    return round(epsilon * 1_000_000)


def epsilon_label(epsilon: float) -> str:
    return f"{epsilon:.2f}"


# ---------------------------------------------------------------------------------------------- parameters


def olh_g(epsilon: float) -> int:
    """OLH's optimal number of hash buckets, round(e^eps + 1), at least 2."""
    return max(2, round(math.exp(epsilon) + 1))


def probabilities(mechanism: Mechanism, epsilon: float) -> tuple[float, float]:
    """(p, q) of the module docstring for a mechanism at `epsilon`."""
    e = math.exp(epsilon)
    if mechanism == "rr":
        return e / (1 + e), 1 / (1 + e)
    if mechanism == "oue":
        return 0.5, 1 / (e + 1)
    if mechanism == "olh":
        g = olh_g(epsilon)
        return e / (e + g - 1), 1 / g
    raise ValueError(f"unknown mechanism {mechanism!r}")


def worst_case_ratio(mechanism: Mechanism, epsilon: float) -> float:
    """max over outputs y and inputs v, v' of P(y | v) / P(y | v'): the mechanism is eps-LDP iff this <= e^eps.

    rr: p / (1-p). oue: two bits differ between v and v', so p (1-q) / ((1-p) q). olh: for a fixed hash the
    reported bucket is the hashed one w.p. p and any other w.p. (1-p)/(g-1); the hash is independent of v.
    """
    p, q = probabilities(mechanism, epsilon)
    if mechanism == "rr":
        return p / (1 - p)
    if mechanism == "oue":
        return p * (1 - q) / ((1 - p) * q)
    g = olh_g(epsilon)
    return p / ((1 - p) / (g - 1))


# ---------------------------------------------------------------------------------------------- randomness


class _SystemRandomness:
    """The two numpy `Generator` methods the encoders use, backed by the OS CSPRNG (devices, production)."""

    def random(self, size: int | tuple[int, ...]) -> np.ndarray:
        n = int(np.prod(size))
        raw = np.frombuffer(os.urandom(8 * n), dtype=np.uint64) >> np.uint64(11)
        return (raw.astype(np.float64) * 2.0**-53).reshape(size)

    def integers(self, low: int, high: int, size: int) -> np.ndarray:
        span = high - low
        if span <= 0 or span > 1 << 63:
            raise ValueError("bad integer range")
        # rejection sampling over 64-bit draws keeps every value exactly equally likely
        limit = (1 << 64) - ((1 << 64) % span)
        out: list[int] = []
        while len(out) < size:
            for x in np.frombuffer(os.urandom(8 * (size - len(out))), dtype=np.uint64).tolist():
                if x < limit:
                    out.append(low + x % span)
        return np.array(out[:size], dtype=np.int64)


Randomness = np.random.Generator | _SystemRandomness


def _rng(rng: np.random.Generator | None) -> Randomness:
    return _SystemRandomness() if rng is None else rng


@functools.lru_cache(maxsize=64)
def _opendp_rr(epsilon: float):  # -> opendp Measurement
    """OpenDP's randomized response on a bool, with its privacy map checked to be <= epsilon.

    The map rounds up conservatively, so p = e^eps/(1+e^eps) can certify eps + 1 ulp; step p down until it
    certifies eps. The step is ~1e-16, so the estimator's p is unaffected.
    """
    import opendp.prelude as dp

    dp.enable_features("contrib")
    prob = math.exp(epsilon) / (1 + math.exp(epsilon))
    for _ in range(64):
        meas = dp.m.make_randomized_response_bool(prob)
        if meas.map(1) <= epsilon:
            return meas
        prob = math.nextafter(prob, 0.5)
    raise ValueError(f"OpenDP cannot certify randomized response at epsilon={epsilon}")


def opendp_rr_certified_epsilon(epsilon: float) -> float:
    """The epsilon OpenDP's privacy map certifies for the measurement used at `epsilon`."""
    return float(_opendp_rr(epsilon).map(1))


# ---------------------------------------------------------------------------------------------- encoders


def rr_perturb(bits: np.ndarray, epsilon: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Randomized response on an array of bools: keep each bit with p = e^eps/(1+e^eps)."""
    bits = np.asarray(bits, dtype=bool)
    if rng is None:
        meas = _opendp_rr(epsilon)
        return np.array([bool(meas(bool(b))) for b in bits.tolist()], dtype=bool)
    p, _ = probabilities("rr", epsilon)
    keep = rng.random(bits.shape) < p
    return np.where(keep, bits, ~bits)


def oue_perturb(indices: np.ndarray, d: int, epsilon: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """OUE: (n, d) bools; the true category's bit is 1 w.p. 1/2, every other bit is 1 w.p. 1/(e^eps+1)."""
    indices = np.asarray(indices, dtype=np.int64)
    p, q = probabilities("oue", epsilon)
    u = _rng(rng).random((len(indices), d))
    onehot = np.zeros((len(indices), d), dtype=bool)
    onehot[np.arange(len(indices)), indices] = True
    return np.where(onehot, u < p, u < q)


def olh_hash(seeds: np.ndarray, values: np.ndarray, g: int) -> np.ndarray:
    """h_seed(value) in [0, g): seeds (n,), values (n,) or (n, k) broadcast against seeds[:, None]."""
    seeds = np.asarray(seeds, dtype=np.int64)
    a = 1 + (seeds >> 31) % (OLH_PRIME - 1)
    b = (seeds & 0x7FFFFFFF) % OLH_PRIME
    values = np.asarray(values, dtype=np.int64)
    if values.ndim == 2:
        a, b = a[:, None], b[:, None]
    return ((a * values + b) % OLH_PRIME) % g  # a < 2^31, values < 2^20: no int64 overflow


def olh_perturb(
    indices: np.ndarray, epsilon: float, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """OLH: (seeds, reported buckets). The hashed bucket is reported w.p. p, else a uniform *other* bucket."""
    indices = np.asarray(indices, dtype=np.int64)
    n, g = len(indices), olh_g(epsilon)
    r = _rng(rng)
    p, _ = probabilities("olh", epsilon)
    seeds = r.integers(0, 1 << OLH_SEED_BITS, size=n).astype(np.int64)
    hashed = olh_hash(seeds, indices, g)
    other = r.integers(0, g - 1, size=n).astype(np.int64)
    other = other + (other >= hashed)  # uniform over the g-1 buckets that are not `hashed`
    keep = r.random(n) < p
    return seeds, np.where(keep, hashed, other)


# ---------------------------------------------------------------------------------------------- wire format


class RRPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bit: int = Field(ge=0, le=1)


class OUEPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    bits: str = Field(pattern=r"^[01]{1,64}$")  # one char per category, in MetricSpec.categories order


class OLHPayload(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = Field(ge=0, lt=1 << OLH_SEED_BITS)
    value: int = Field(ge=0, lt=1 << 20)


Payload = RRPayload | OUEPayload | OLHPayload
_PAYLOAD_TYPE: dict[str, type[BaseModel]] = {"rr": RRPayload, "oue": OUEPayload, "olh": OLHPayload}


class TelemetryReport(BaseModel):
    """One locally-privatised report. The model version and the day travel in the clear; nothing else does."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    report_id: uuid.UUID
    metric: MetricName
    mechanism: Mechanism
    epsilon: float = Field(ge=MIN_EPSILON, le=MAX_EPSILON)
    model_version: str = Field(min_length=1, max_length=129, pattern=r"^[A-Za-z0-9_.+-]+$")
    day: str = Field(pattern=r"^\d{4}-\d{2}-\d{2}$")
    payload: Payload

    @field_validator("epsilon")
    @classmethod
    def _two_decimals(cls, v: float) -> float:
        # aggregates are kept per epsilon, so epsilons are coarse (0.01 steps) to bound the number of cells
        if abs(v * 100 - round(v * 100)) > 1e-9:
            raise ValueError("epsilon must be a multiple of 0.01")
        return round(v, 2)

    @field_validator("day")
    @classmethod
    def _real_date(cls, v: str) -> str:
        dt.date.fromisoformat(v)  # raises ValueError on 2024-02-30
        return v

    @model_validator(mode="after")
    def _payload_fits(self) -> TelemetryReport:
        spec = METRICS[self.metric]
        if self.mechanism not in spec.mechanisms:
            raise ValueError(f"metric {self.metric} takes mechanism {' or '.join(spec.mechanisms)}")
        if not isinstance(self.payload, _PAYLOAD_TYPE[self.mechanism]):
            raise ValueError(f"mechanism {self.mechanism} needs a {_PAYLOAD_TYPE[self.mechanism].__name__}")
        if isinstance(self.payload, OUEPayload) and len(self.payload.bits) != spec.d:
            raise ValueError(f"oue payload for {self.metric} must have {spec.d} bits")
        if isinstance(self.payload, OLHPayload) and self.payload.value >= olh_g(self.epsilon):
            raise ValueError(f"olh value must be < g={olh_g(self.epsilon)} at epsilon {self.epsilon}")
        return self


class TelemetryBatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reports: list[TelemetryReport] = Field(min_length=1, max_length=MAX_REPORTS_PER_BATCH)


ReportStatus = Literal["accepted", "duplicate", "refused"]


class ReportResult(BaseModel):
    report_id: str
    status: ReportStatus
    reason: str | None = None


class TelemetryAck(BaseModel):
    """Per-report outcome. `accepted` and `duplicate` both mean "counted exactly once": delete from the outbox."""

    results: list[ReportResult]
    accepted: int
    duplicate: int
    refused: int


def encode_report(
    metric: str,
    value: str | bool,
    *,
    model_version: str,
    day: str,
    epsilon: float | None = None,
    mechanism: Mechanism | None = None,
    rng: np.random.Generator | None = None,
    report_id: uuid.UUID | None = None,
) -> TelemetryReport:
    """Device side: privatise one value into a report. The raw value never leaves this function."""
    spec = METRICS[metric]
    mech = mechanism or spec.default_mechanism
    eps = spec.default_epsilon if epsilon is None else epsilon
    index = np.array([spec.index(value)])
    payload: Payload
    if mech == "rr":
        if spec.d != 2:
            raise ValueError("randomized response is for binary metrics")
        payload = RRPayload(bit=int(rr_perturb(index.astype(bool), eps, rng)[0]))
    elif mech == "oue":
        payload = OUEPayload(bits="".join("1" if b else "0" for b in oue_perturb(index, spec.d, eps, rng)[0]))
    else:
        seeds, values = olh_perturb(index, eps, rng)
        payload = OLHPayload(seed=int(seeds[0]), value=int(values[0]))
    rid = report_id or (uuid.uuid4() if rng is None else uuid.UUID(bytes=rng.bytes(16), version=4))
    return TelemetryReport(
        report_id=rid,
        metric=metric,  # type: ignore[arg-type]
        mechanism=mech,
        epsilon=eps,
        model_version=model_version,
        day=day,
        payload=payload,
    )


# ---------------------------------------------------------------------------------------------- cloud side


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
    less than the unbiased interval, and never lies beside its own estimate."""
    lo = float(np.clip(raw - Z_95 * std_error, *bounds))
    hi = float(np.clip(raw + Z_95 * std_error, *bounds))
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


def estimate_metric(spec: MetricSpec, cells: Iterable[CellCounts]) -> list[CategoryEstimate]:
    """Combine cells (different mechanisms or epsilons) into one estimate per category.

    Each cell estimates the frequency among its own reports; the fleet frequency is their n-weighted mean,
    sum(n_c f_c) / N, with variance sum(n_c^2 Var_c) / N^2 (cells are independent). That unbiased vector can
    have negative entries and need not sum to one; what is shown is its Norm-Sub post-processing (free of
    privacy cost: it reads only the released numbers), with the unbiased one kept beside it.
    """
    cells = [c for c in cells if c.n > 0]
    if not cells:
        raise ValueError("no reports")
    total = sum(c.n for c in cells)
    est = np.zeros(spec.d)
    var = np.zeros(spec.d)
    for c in cells:
        if len(c.counts) != spec.d:
            raise ValueError(f"cell for {spec.name} has {len(c.counts)} counts, expected {spec.d}")
        f, v = estimate_cell(c)
        est += c.n * f
        var += c.n**2 * v
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
