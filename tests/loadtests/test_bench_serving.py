"""The serving section's text from made-up capacities: shares against the same server's /healthz, the batching
verdict, the generator-ceiling caveat and the mix's encode tail (no servers are started here)."""

from __future__ import annotations

from pathlib import Path

from loadtests.bench_serving import _render
from loadtests.open_loop import Capacity, OpenLoopResult


def run(rate: float, lat: float = 2.0, ids: tuple[int, ...] = (0,) * 100) -> OpenLoopResult:
    return OpenLoopResult(rate, len(ids), len(ids), 0, 0, (lat,) * len(ids), ids, (len(ids) - 1) / rate, 0.5)


def cap(rate: float) -> Capacity:
    return Capacity(rate, "server", (run(rate), run(rate * 1.1, lat=50.0)), run(rate / 2))


def test_the_section_reports_shares_batching_and_the_ceiling_caveat() -> None:
    edge = {
        "off": {"GET /healthz": cap(4000), "POST /v1/encode, 1 short text": cap(1000)},
        "on": {"GET /healthz": cap(4000), "POST /v1/encode, 1 short text": cap(1300)},
    }
    cloud = {"GET /healthz": cap(6000), "GET /v1/devices/{id}/model + If-None-Match (304)": cap(3000)}
    mix = run(52, ids=(0, 1, 2, 3) * 50)
    text = _render("eibert bench", Path("b"), edge, cloud, cap(6500), mix, {0, 1, 2}, (1.0, 1.0, 1.0), {0}, {1})
    assert "| edge, batching off | POST /v1/encode, 1 short text | **1,000** (server) | 25% |" in text
    assert "| cloud (Redis) | GET /v1/devices/{id}/model + If-None-Match (304) | **3,000** (server) | 50% |" in text
    assert "1 short text: **1.30x**" in text and "it pays, so it should be on" in text
    assert "cloud /healthz reached 80% or more of the generator's own ceiling" in text
    assert "edge (batching off) /healthz" not in text  # 4,000 is below 80% of the 6,500 ceiling
    assert "1,100/s: p99 50 ms" in text and "**1.0x** p50" in text and "pinned to CPU [0]" in text
