"""The benchmarks' server-CPU meter: reads a real process's CPU time, and splits it per request."""

from __future__ import annotations

import os
import time

from service.devstack import server_cpu
from service.devstack.server_cpu import cpu_per_request, process_cpu_s


def burn(seconds: float) -> None:
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_process_cpu_counts_this_process_working_not_sleeping() -> None:
    t0 = process_cpu_s(os.getpid())
    time.sleep(0.1)
    slept = process_cpu_s(os.getpid()) - t0
    burn(0.2)
    worked = process_cpu_s(os.getpid()) - t0 - slept
    assert slept < 0.05 and 0.15 < worked < 1.0


def test_cpu_per_request_divides_by_the_requests_made(monkeypatch) -> None:
    monkeypatch.setattr(server_cpu, "WARMUP", 1)
    monkeypatch.setattr(server_cpu, "CPU_ROUNDS", 4)
    counts = {"cheap": 0, "dear": 0}

    def call(name: str, seconds: float):
        def run() -> None:
            counts[name] += 1
            burn(seconds)

        return run

    got = cpu_per_request(os.getpid(), {"cheap": (call("cheap", 0.005), 40), "dear": (call("dear", 0.02), 20)})
    assert counts == {"cheap": 41, "dear": 21}  # one warm-up call each, then the requests
    # ms per request; the clock ticks every 10 ms, so each of the 4 rounds may be off by one tick
    assert 3.0 < got["cheap"] < 8.0 and 15.0 < got["dear"] < 30.0
