"""What the cloud benchmark (`loadtests/bench_cloud.py`) sends: a small asyncio HTTP/1.1 keep-alive client
that replays pre-built requests (so the client costs little and the server is what is measured; the request
builder and response reader are the open-loop generator's, `loadtests/open_loop.py`), and the LDP
simulation's ground truth, encoded reports and in-process estimates (the same encoders and estimator a device
and the cloud use).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from loadtests.open_loop import CONNECTIONS, HOST, read_response

SEED = 20240605


# ------------------------------------------------------------------------------------------------ load client


@dataclass
class LoadResult:
    seconds: float
    statuses: list[int]
    bodies: list[bytes]

    @property
    def rate(self) -> float:
        return len(self.statuses) / self.seconds


async def _drive(port: int, requests: Sequence[bytes], connections: int, keep_bodies: bool) -> LoadResult:
    """Send every request once over `connections` keep-alive connections; no pipelining."""
    statuses = [0] * len(requests)
    bodies: list[bytes] = [b""] * len(requests) if keep_bodies else []
    order = iter(range(len(requests)))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for i in order:
                writer.write(requests[i])
                statuses[i], body = await read_response(reader)
                if keep_bodies:
                    bodies[i] = body
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(connections, len(requests)))))
    return LoadResult(time.perf_counter() - t0, statuses, bodies)


def drive(
    port: int, requests: Sequence[bytes], connections: int = CONNECTIONS, keep_bodies: bool = False
) -> LoadResult:
    return asyncio.run(_drive(port, requests, connections, keep_bodies))


# ------------------------------------------------------------------------------------------------ LDP truth


@dataclass
class Truth:
    clicked: np.ndarray  # (n,) bool
    latency: np.ndarray  # (n,) bucket index
    genre: np.ndarray  # (n,) genre index


def ground_truth(n: int) -> Truth:
    from service.common.ldp import GENRES

    rng = np.random.default_rng(SEED)
    zipf = 1.0 / np.arange(1, len(GENRES) + 1) ** 1.1
    return Truth(
        clicked=rng.random(n) < 0.31,
        latency=rng.choice(5, size=n, p=[0.42, 0.31, 0.15, 0.08, 0.04]),
        genre=rng.permutation(len(GENRES))[rng.choice(len(GENRES), size=n, p=zipf / zipf.sum())],
    )


def default_epsilons() -> dict[str, float]:
    from service.common.ldp import METRICS

    return {k: v.default_epsilon for k, v in METRICS.items()}


def encode_all(truth: Truth, rng: np.random.Generator, eps: dict[str, float]) -> dict[str, dict[str, np.ndarray]]:
    """Every device's three reports, vectorised through the same encoders `encode_report` uses."""
    from service.common.ldp import olh_perturb, oue_perturb, rr_perturb

    seeds, values = olh_perturb(truth.genre, eps["top_genre"], rng)
    return {
        "top_item_clicked": {"bit": rr_perturb(truth.clicked, eps["top_item_clicked"], rng)},
        "latency_bucket": {"bits": oue_perturb(truth.latency, 5, eps["latency_bucket"], rng)},
        "top_genre": {"seed": seeds, "value": values},
    }


def estimates(enc: dict[str, dict[str, np.ndarray]]) -> dict[str, list]:
    from service.common.ldp import (
        METRICS,
        CellCounts,
        counts_from_support,
        estimate_metric,
        support_matrix_olh,
        support_matrix_rr,
    )

    m = METRICS
    sup = {
        "top_item_clicked": support_matrix_rr(enc["top_item_clicked"]["bit"]),
        "latency_bucket": enc["latency_bucket"]["bits"],
        "top_genre": support_matrix_olh(
            enc["top_genre"]["seed"], enc["top_genre"]["value"], m["top_genre"].d, m["top_genre"].default_epsilon
        ),
    }
    out = {}
    for name, s in sup.items():
        spec = m[name]
        cell = CellCounts(spec.default_mechanism, spec.default_epsilon, len(s), counts_from_support(s))
        out[name] = estimate_metric(spec, [cell])
    return out


def true_freqs(truth: Truth) -> dict[str, np.ndarray]:
    n = len(truth.genre)
    return {
        "top_item_clicked": np.bincount(truth.clicked.astype(int), minlength=2) / n,
        "latency_bucket": np.bincount(truth.latency, minlength=5) / n,
        "top_genre": np.bincount(truth.genre, minlength=20) / n,
    }


def _report_json(metric: str, mechanism: str, eps: float, version: str, day: str, payload: dict) -> dict:
    return {
        "report_id": str(uuid.uuid4()),
        "metric": metric,
        "mechanism": mechanism,
        "epsilon": eps,
        "model_version": version,
        "day": day,
        "payload": payload,
    }


def device_reports(enc: dict, i: int, version: str, day: str, e: dict[str, float]) -> list[dict]:
    bits = "".join("1" if b else "0" for b in enc["latency_bucket"]["bits"][i])
    return [
        _report_json(
            "top_item_clicked",
            "rr",
            e["top_item_clicked"],
            version,
            day,
            {"bit": int(enc["top_item_clicked"]["bit"][i])},
        ),
        _report_json("latency_bucket", "oue", e["latency_bucket"], version, day, {"bits": bits}),
        _report_json(
            "top_genre",
            "olh",
            e["top_genre"],
            version,
            day,
            {"seed": int(enc["top_genre"]["seed"][i]), "value": int(enc["top_genre"]["value"][i])},
        ),
    ]
