"""`eibert bench-fleet`: the section it writes into BENCHMARKS.md, and one tiny run of the real stack (the
10,000-device run is a benchmark, never a test)."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.devstack.bench_file import write_section
from simulators.bench import FleetRun, coverage_line, edge_rank_mean_ms, run_fleet, section
from simulators.summary import IntervalCoverage
from tests.simulators.test_checks import passing


def _run() -> FleetRun:
    s = passing()
    s.fleet_estimates[0].coverage = IntervalCoverage(intervals=4, covered=4)
    s.fleet_estimates[1].coverage = IntervalCoverage(intervals=10, covered=9)
    return FleetRun(s, wall_s=12.0, fleet_cpu_s=9.0, cloud_cpu_s=2.0, max_rss_mib=300.0, edge_rank_mean_ms=4.5,
                    load_before=(1.0, 1.0, 1.0), load_after=(2.0, 1.0, 1.0))  # fmt: skip


def test_the_section_records_command_machine_coverage_and_figures(tmp_path: Path) -> None:
    run = _run()
    assert coverage_line(run.summary) == (13, 14)
    body = section(run, "eibert bench-fleet --devices 10")
    assert "Command: `eibert bench-fleet --devices 10`" in body and "load average 1.00 before" in body
    assert "| 95% intervals covering the truth | 92.9% (13/14) |" in body
    assert "| peak memory (fleet process, max RSS) | 300 MiB |" in body
    assert "| rank mean, the edge node's own (its /metrics) | 4.5 ms |" in body
    out = tmp_path / "BENCHMARKS.md"
    write_section(out, "fleet", body)
    write_section(out, "fleet", body)  # replaced, not appended
    assert out.read_text().count("<!-- bench:fleet -->") == 1


def test_a_tiny_fleet_runs_against_a_real_cloud_and_edge_node() -> None:
    run = run_fleet(devices=12, days=1, seed=3)
    s = run.summary
    assert (s.devices, s.http_devices, s.enrolled) == (12, 10, 12)
    assert all(s.checks.values()), s.checks
    assert run.max_rss_mib > 0 and run.cloud_cpu_s > 0 and run.wall_s >= s.wall_s
    assert run.edge_rank_mean_ms is not None and run.edge_rank_mean_ms > 0


def test_the_edge_rank_mean_is_read_from_prometheus_text() -> None:
    text = (
        'eibert_edge_request_seconds_sum{method="POST",route="/v1/rank",status="200"} 0.5\n'
        'eibert_edge_request_seconds_count{method="POST",route="/v1/rank",status="200"} 100.0\n'
        'eibert_edge_request_seconds_count{method="GET",route="/v1/model",status="200"} 7.0\n'
    )
    assert edge_rank_mean_ms(text) == pytest.approx(5.0)
    assert edge_rank_mean_ms("") is None
