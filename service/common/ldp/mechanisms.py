"""The LDP mechanisms: their (p, q), the OS-CSPRNG randomness devices draw from, and the device-side encoders.

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
  Devices sample it with numpy (no OpenDP on the edge: 265 MB); the keep probability is a multiple of 2^-53,
  so a 53-bit uniform draw samples it exactly, set just below e^eps / (1 + e^eps) so that float rounding never
  lets it exceed eps. The tests certify that probability with OpenDP's ``make_randomized_response_bool`` privacy
  map and check that OpenDP's sampler and ours draw the same distribution (``opendp_rr_measurement``).
- ``oue`` optimized unary encoding: one bit per category; the true category's bit is 1 with p = 1/2, every
  other bit is 1 with q = 1 / (e^eps + 1). Hand-written: OpenDP (0.16) offers only the *symmetric* bit-vector
  randomized response (basic RAPPOR), whose variance is worse; OUE's asymmetric flip is what makes it optimal.
- ``olh`` optimized local hashing: hash the value into g = round(e^eps + 1) buckets with a per-report random
  pairwise-independent hash, then randomized response over the g buckets (p = e^eps / (e^eps + g - 1),
  q = 1/g). Hand-written: OpenDP has no local-hashing frequency oracle.

Randomness: with ``rng=None`` (devices) draws come from the OS CSPRNG (``os.urandom``); passing a
seeded ``numpy.random.Generator`` is for simulations and tests only, where reproducibility is the point.
"""

from __future__ import annotations

import functools
import math
import os
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # OpenDP is the cloud's and the tests' dependency, imported where it is used
    from opendp.mod import Measurement

from service.common.ldp.catalogue import Mechanism

__all__ = [
    "OLH_PRIME",
    "OLH_SEED_BITS",
    "Randomness",
    "olh_g",
    "olh_hash",
    "olh_perturb",
    "opendp_rr_certified_epsilon",
    "opendp_rr_measurement",
    "oue_perturb",
    "probabilities",
    "rr_keep_probability",
    "rr_perturb",
    "worst_case_ratio",
]

# OLH hash family h_{a,b}(x) = ((a x + b) mod P) mod g (Carter-Wegman), P prime; a, b come from a 62-bit seed.
# Pairwise independent up to O(1/P) ~ 5e-10, far below any sampling error here.
OLH_PRIME = (1 << 31) - 1
OLH_SEED_BITS = 62
# rr keeps the true bit with a probability whose log-odds are eps (1 - RR_EPSILON_MARGIN): float rounding in the
# log-odds (~1e-16) can then never push it past eps. The estimator's p moves by ~1e-10, far below sampling error.
RR_EPSILON_MARGIN = 1e-9


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
def rr_keep_probability(epsilon: float) -> float:
    """The probability rr keeps the true bit at `epsilon`: k / 2^53 (what `random() < p` samples exactly from a
    53-bit uniform), at most the value whose log-odds are eps (1 - RR_EPSILON_MARGIN). The check leaves half the
    margin to the rounding of the computed log-odds."""
    target = epsilon * (1 - RR_EPSILON_MARGIN)
    p = math.floor(math.exp(target) / (1 + math.exp(target)) * 2.0**53) / 2.0**53
    if not (epsilon >= 0 and 0.5 <= p < 1 and math.log(p) - math.log1p(-p) <= epsilon * (1 - RR_EPSILON_MARGIN / 2)):
        raise ValueError(f"no randomized response at epsilon={epsilon}")
    return p


def opendp_rr_measurement(epsilon: float) -> Measurement:
    """OpenDP's randomized response on a bool at the devices' keep probability: its privacy map certifies
    what devices run, and its sampler is the reference the tests compare ours with. Needs OpenDP (cloud, tests)."""
    import opendp.prelude as dp

    dp.enable_features("contrib")
    return dp.m.make_randomized_response_bool(rr_keep_probability(epsilon))


def opendp_rr_certified_epsilon(epsilon: float) -> float:
    """The epsilon OpenDP's privacy map certifies for the randomized response devices run at `epsilon`."""
    return float(opendp_rr_measurement(epsilon).map(1))


# ---------------------------------------------------------------------------------------------- encoders


def rr_perturb(bits: np.ndarray, epsilon: float, rng: np.random.Generator | None = None) -> np.ndarray:
    """Randomized response on an array of bools: keep each bit with `rr_keep_probability` (~ e^eps/(1+e^eps))."""
    bits = np.asarray(bits, dtype=bool)
    keep = _rng(rng).random(bits.shape) < rr_keep_probability(epsilon)
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
