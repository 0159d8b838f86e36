"""The bodies the locust users send are valid under the real wire models, and within the privacy budget."""

from __future__ import annotations

import datetime as dt
import random

from loadtests.payloads import (
    BEHAVIORS,
    N_CANDIDATES,
    encode_request,
    rank_request,
    telemetry_batch,
)
from loadtests.texts import fallback_sample
from service.common.ldp import MAX_REPORTS_PER_BATCH, METRICS, TelemetryBatch
from service.edge.schemas import EncodeRequest, RankRequest


def _sample():
    from loadtests.texts import TextSample

    items = [{"id": f"i{i}", "text": f"Movie {i} (199{i % 10}). Drama"} for i in range(400)]
    return TextSample(items=items, short=[f"Movie {i}" for i in range(400)]).check()


def test_encode_request_has_1_to_4_texts() -> None:
    rng = random.Random(0)
    sizes = {len(EncodeRequest.model_validate(encode_request(_sample(), rng)).texts) for _ in range(200)}
    assert sizes == {1, 2, 3, 4}


def test_rank_request_is_valid_and_realistic() -> None:
    rng = random.Random(1)
    for _ in range(20):
        raw = rank_request(_sample(), rng, now=1.7e9)
        req = RankRequest.model_validate(raw)
        assert len(req.candidates) == N_CANDIDATES and req.top_k == 10
        assert BEHAVIORS[0] <= len(req.behaviors) <= BEHAVIORS[1]
        ts = [b.ts for b in req.behaviors]
        assert ts == sorted(ts) and ts[-1] < 1.7e9
        assert not {b.text for b in req.behaviors} & {c.text for c in req.candidates}  # none seen before


def test_rank_request_on_a_tiny_sample_is_still_valid() -> None:
    req = RankRequest.model_validate(rank_request(fallback_sample(), random.Random(2), now=1.7e9))
    assert 1 <= req.top_k <= len(req.candidates) and len(req.behaviors) >= BEHAVIORS[0]


def test_telemetry_batch_is_ldp_encoded_unique_and_within_budget() -> None:
    day = dt.date(2026, 1, 2).isoformat()
    batch = telemetry_batch(
        version="0.1.0", day=day, click_rate=0.3, latency="<10ms", genre="Drama", rng=random.Random(3)
    )
    parsed = TelemetryBatch.model_validate(batch)
    assert len(parsed.reports) <= MAX_REPORTS_PER_BATCH
    assert len({r.report_id for r in parsed.reports}) == len(parsed.reports)
    assert sorted(r.metric for r in parsed.reports) == sorted(METRICS)  # one report per group, as the cloud takes
    assert sum(r.epsilon for r in parsed.reports) <= 1.0 + 1e-9
    assert all(r.epsilon == METRICS[r.metric].default_epsilon and r.day == day for r in parsed.reports)
    assert "Drama" not in str(batch) and "<10ms" not in str(batch)  # only privatised payloads travel


def test_enrolment_token_comes_from_the_env_or_its_file(monkeypatch, tmp_path) -> None:
    from loadtests.payloads import ENROLMENT_TOKEN_ENV, ENROLMENT_TOKEN_FILE_ENV, enrolment_token

    monkeypatch.delenv(ENROLMENT_TOKEN_ENV, raising=False)
    monkeypatch.delenv(ENROLMENT_TOKEN_FILE_ENV, raising=False)
    assert enrolment_token() is None
    path = tmp_path / "token"
    path.write_text("from-file\n")
    monkeypatch.setenv(ENROLMENT_TOKEN_FILE_ENV, str(path))
    assert enrolment_token() == "from-file"
    monkeypatch.setenv(ENROLMENT_TOKEN_ENV, "inline")
    assert enrolment_token() == "inline"
