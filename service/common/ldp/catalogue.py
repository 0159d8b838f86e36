"""The fleet metrics LDP reports may carry: their categories, the mechanisms each takes and its default epsilon.

Devices and the cloud both read this table, so a category index means the same thing on either side.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = [
    "GENRES",
    "LATENCY_BUCKETS",
    "MECHANISMS",
    "METRICS",
    "Mechanism",
    "MetricName",
    "MetricSpec",
    "epsilon_label",
    "latency_bucket_of",
    "micro_epsilon",
]

Mechanism = Literal["rr", "oue", "olh"]
MECHANISMS: tuple[Mechanism, ...] = ("rr", "oue", "olh")

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


def _categorical(name: str, categories: tuple[str, ...], default: Mechanism, epsilon: float, what: str) -> MetricSpec:
    """A metric over more than two categories: unary encoding and local hashing both apply, randomized response
    does not (it is binary)."""
    return MetricSpec(name, categories, ("oue", "olh"), default, epsilon, what)


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
        _categorical("latency_bucket", LATENCY_BUCKETS, "oue", 0.3, "on-device rank latency bucket"),
        _categorical("top_genre", GENRES, "olh", 0.3, "the user's top interest among the MovieLens genres"),
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
