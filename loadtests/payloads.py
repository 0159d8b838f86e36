"""Request bodies the locust users send, built here so they can be checked against the wire models without
importing locust (which monkey-patches the process that imports it)."""

from __future__ import annotations

import os
import random
from typing import Any

from loadtests.texts import TextSample
from service.common.ldp import METRICS, encode_report

# environment the locust users read (besides loadtests.texts.SAMPLE_ENV)
EDGE_URL_ENV = "EIBERT_LOAD_EDGE_URL"  # host of EdgeUser when locust gets no --host
CLOUD_URL_ENV = "EIBERT_LOAD_CLOUD_URL"  # host of CloudDeviceUser when locust gets no --host
WAIT_ENV = "EIBERT_LOAD_MAX_WAIT_S"  # think time between a user's requests is uniform in [0, this]
ENROLMENT_TOKEN_ENV = "EIBERT_LOAD_ENROLMENT_TOKEN"  # the operator-issued token devices enrol with
ENROLMENT_TOKEN_FILE_ENV = "EIBERT_LOAD_ENROLMENT_TOKEN_FILE"  # or a file holding it
DEFAULT_MAX_WAIT_S = 0.25

N_CANDIDATES = 100
BEHAVIORS = (20, 50)  # behaviors per /v1/rank request, inclusive
ENCODE_TEXTS = (1, 4)  # texts per /v1/encode request, inclusive
TOP_K = 10
BEHAVIOR_KINDS = ("view", "view", "view", "click", "purchase")
# per telemetry batch: one report per metric, at the metric's own epsilon (the cloud refuses any other, and
# takes one report per device and (metric, version, day) group): 0.4 + 0.3 + 0.3 = the daily budget of 1.0
DAILY_BUDGET = 1.0
if sum(spec.default_epsilon for spec in METRICS.values()) > DAILY_BUDGET:
    raise ValueError("a telemetry batch would spend more than a device's daily epsilon budget")


def enrolment_token() -> str | None:
    """The enrolment token for `POST /v1/devices` (inline env wins over the file); None if unset."""
    token = os.environ.get(ENROLMENT_TOKEN_ENV, "").strip()
    path = os.environ.get(ENROLMENT_TOKEN_FILE_ENV)
    if not token and path:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    return token or None


def max_wait_s() -> float:
    return float(os.environ.get(WAIT_ENV, DEFAULT_MAX_WAIT_S))


def encode_request(sample: TextSample, rng: random.Random) -> dict[str, Any]:
    n = rng.randint(*ENCODE_TEXTS)
    return {"texts": rng.sample(sample.short, min(n, len(sample.short)))}


def rank_request(sample: TextSample, rng: random.Random, now: float) -> dict[str, Any]:
    """20-50 behaviors (time-ordered, the newest last) and up to 100 distinct candidates, none seen before."""
    n_behaviors = rng.randint(*BEHAVIORS)
    pool = rng.sample(sample.items, min(len(sample.items), N_CANDIDATES + n_behaviors))
    candidates = pool[:N_CANDIDATES] if len(pool) > N_CANDIDATES else pool[: max(1, len(pool) // 2)]
    seen = pool[len(candidates) :] or pool
    history = seen[:n_behaviors] if len(seen) >= n_behaviors else rng.choices(seen, k=n_behaviors)
    ts = now - rng.uniform(3_600, 30 * 86_400)
    behaviors = []
    for item in history:
        ts += rng.uniform(30, 7_200)
        behaviors.append({"text": item["text"], "ts": round(ts, 3), "kind": rng.choice(BEHAVIOR_KINDS)})
    return {
        "behaviors": behaviors,
        "candidates": [{"id": c["id"], "text": c["text"]} for c in candidates],
        "top_k": min(TOP_K, len(candidates)),
    }


def telemetry_batch(
    *, version: str, day: str, click_rate: float, latency: str, genre: str, rng: random.Random
) -> dict[str, Any]:
    """One device's reports for one day, each privatised by the device-side encoder with OS randomness and a
    fresh report id; the raw values (`click_rate` draws, `latency`, `genre`) never appear in the body."""
    values: list[tuple[str, str | bool]] = [
        ("top_item_clicked", rng.random() < click_rate),
        ("latency_bucket", latency),
        ("top_genre", genre),
    ]
    reports = [encode_report(metric, value, model_version=version, day=day).model_dump(mode="json")
               for metric, value in values]  # fmt: skip
    return {"reports": reports}
