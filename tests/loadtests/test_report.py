"""Locust CSV parsing and the `load` section, on a small fixture in locust's own format."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtests.report import AGGREGATED, LoadRun, read_failures, read_stats, render_section
from service.devstack.bench_file import replace_section

HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response Time,Min Response Time,"
    "Max Response Time,Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%"
)
STATS = f"""{HEADER}
POST,/v1/encode,115,0,3,6.2,1,40,9000,23.1,0.0,3,4,5,6,20,27,30,33,40,40,40
POST,/v1/rank,30,1,29,30.5,12,60,700,6.0,0.2,29,31,33,35,42,49,55,56,60,60,60
GET,/v1/never,0,0,0,0.0,0,0,0,0.0,0.0,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A,N/A
,Aggregated,145,1,4,11.0,1,60,7000,29.1,0.2,4,5,7,9,30,38,45,49,60,60,60
"""
FAILURES = """Method,Name,Error,Occurrences
POST,/v1/rank,"CatchResponseError('status 503: model unavailable')",1
"""


@pytest.fixture
def csvs(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "edge_stats.csv").write_text(STATS)
    (tmp_path / "edge_failures.csv").write_text(FAILURES)
    return tmp_path / "edge_stats.csv", tmp_path / "edge_failures.csv"


def test_read_stats_parses_rows_and_na(csvs: tuple[Path, Path]) -> None:
    stats = read_stats(csvs[0])
    assert [s.name for s in stats] == ["/v1/encode", "/v1/rank", "/v1/never", AGGREGATED]
    rank = stats[1]
    assert (rank.method, rank.requests, rank.failures, rank.rps) == ("POST", 30, 1, 6.0)
    assert (rank.p50_ms, rank.p95_ms, rank.p99_ms) == (29.0, 49.0, 56.0)
    assert stats[2].p95_ms is None
    assert stats[3].method == ""


def test_read_stats_refuses_other_csv(tmp_path: Path) -> None:
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ValueError, match="not a locust stats CSV"):
        read_stats(tmp_path / "x.csv")


def test_failures_and_verdict(csvs: tuple[Path, Path], tmp_path: Path) -> None:
    run = LoadRun("edge", "EdgeUser", 4, 15, read_stats(csvs[0]), read_failures(csvs[1]))
    assert run.failed and run.total.requests == 145
    assert read_failures(tmp_path / "missing_failures.csv") == []
    when = "2026-01-01 00:00 UTC"
    body = render_section([run], command="make load LOAD_SECONDS=15", when=when, machine="m", setup="s")
    assert "`make load LOAD_SECONDS=15` on 2026-01-01 00:00 UTC; m." in body
    assert "| `POST /v1/rank` | 30 | 6.0 | 29 | 49 | 56 | 1 |" in body
    assert "| `GET /v1/never` | 0 | 0.0 | n/a | n/a | n/a | 0 |" in body
    assert "| **all** | 145 | 29.1 | 4 | 38 | 49 | 1 |" in body
    assert "x1: CatchResponseError('status 503: model unavailable')" in body
    assert "Result: 1 requests failed." in body


def test_clean_run_and_section_replacement(csvs: tuple[Path, Path]) -> None:
    stats = [s for s in read_stats(csvs[0]) if s.name != "/v1/rank"]
    stats[-1] = stats[-1].__class__(**{**stats[-1].__dict__, "failures": 0})
    run = LoadRun("edge", "EdgeUser", 4, 15, stats)
    assert not run.failed
    body = render_section([run], command="c", when="w", machine="m", setup="s")
    assert "Result: no request failed." in body
    doc = "# b\n\n<!-- bench:load -->\nold\n<!-- /bench:load -->\n\n<!-- bench:x -->\nkeep\n<!-- /bench:x -->\n"
    new = replace_section(doc, "load", body)
    assert "old" not in new and "keep" in new and new.count("<!-- bench:load -->") == 1


def test_a_run_that_made_no_request_failed() -> None:
    from loadtests.report import EndpointStats

    empty = LoadRun("cloud", "CloudDeviceUser", 1, 1, [EndpointStats("", AGGREGATED, 0, 0, 0.0, None, None, None)])
    assert empty.failed


def test_server_warnings_are_deduplicated_masked_and_rendered() -> None:
    from loadtests.report import distinct_warnings

    log = (
        "2026-01-01 00:00:01,000 INFO service.cloud.app: started\n"
        "2026-01-01 00:00:01,000 WARNING service.cloud.keys: dev mode: generated a key at /tmp/x/k.pem\n"
        "2026-01-01 00:00:02,000 WARNING service.edge.updater: update failed at /tmp/eibert-load-abc/edge\n"
        "2026-01-01 00:00:32,000 WARNING service.edge.updater: update failed at /tmp/eibert-load-xyz/edge\n"
    )
    warnings = distinct_warnings(log, "edge")
    assert warnings == ["edge: WARNING `service.edge.updater`: update failed at <tmp>"]
    body = render_section([], command="c", when="w", machine="m", setup="s", server_warnings=warnings)
    assert "- edge: WARNING `service.edge.updater`: update failed at <tmp>" in body
