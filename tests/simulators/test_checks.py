"""Each check of `eibert simulate` and `eibert demo` fails when what it checks goes wrong: a summary that passes,
then one change per check that must turn exactly that check to FAIL."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulators import summary as sm
from simulators.checks import NARROW_INTERVAL, demo_checks, fleet_checks
from simulators.failures import FailureSummary
from simulators.summary import render

NEXT = "eibert-0.3.0"
EDGE_WANT = "0.3.0"


def passing() -> sm.FleetSummary:
    return sm.FleetSummary(
        devices=10,
        in_process_devices=8,
        http_devices=2,
        enrolled=10,
        simulated_days=1,
        wall_s=1.0,
        requests={"rank": 40},
        sessions=40,
        clicks=12,
        top_click_rate=0.2,
        latency={"all": sm.LatencySummary(calls=40, p50_ms=1.0, p99_ms=2.0)},
        versions={NEXT: 8, "eibert-0.1.0": 2},
        rollout=sm.RolloutSummary(stable=NEXT, percent=100, devices_following=8, devices_on_target=8, progress=1.0),
        fleet_estimates=[
            sm.MetricComparison(metric=m, groups_released=1, groups_withheld=0, reports=3000, narrowest_interval=0.1)
            for m in ("top_item_clicked", "latency_bucket", "top_genre")
        ],
        telemetry=sm.TelemetrySummary(recorded=20, accepted=20),
        epsilon=sm.EpsilonSummary(
            daily_budget=4.0, per_device_day_max=4.0, per_device_total_mean=3.0, per_device_total_max=4.0
        ),
        faults=[
            sm.FaultReport(kind="bitflip", injected=1, handled="rejected"),
            sm.FaultReport(kind="drop", injected=3, handled=""),
        ],
        failures=FailureSummary(by_call={"poll": {"drop": 3}, "verify": {"bitflip": 1}}, explained=4),
        rejected_downloads={"sha256": 1},
        edge_nodes=[sm.EdgeNodeSummary(url="http://e", model_version=EDGE_WANT)],
    )


def _all(s: sm.FleetSummary, restarts: int = 1) -> dict[str, bool]:
    demo = demo_checks(s, next_version=NEXT, edge_want=EDGE_WANT, restarts=restarts, narrow=NARROW_INTERVAL)
    return {**fleet_checks(s), **demo}


def _rank_422(s: sm.FleetSummary) -> None:
    s.failures.by_call["rank"] = {"unexplained": 1}
    s.failures.unexplained = 1


def _unexplained_poll(s: sm.FleetSummary) -> None:
    s.failures.by_call["poll"]["unexplained"] = 2
    s.failures.unexplained = 2


def _unrejected(s: sm.FleetSummary) -> None:
    s.faults.append(sm.FaultReport(kind="truncate", injected=1, handled=""))


MUTATIONS: dict[str, Callable[[sm.FleetSummary], None]] = {
    "every device enrolled": lambda s: setattr(s, "enrolled", 9),
    "every rank request served": lambda s: setattr(s, "sessions", 0),
    "no unexplained failures": _unexplained_poll,
    "every corrupted download rejected": _unrejected,
    "versions account for every device": lambda s: s.versions.update({"unknown": 1}),
    "per-device daily epsilon within the budget": lambda s: setattr(s.epsilon, "per_device_day_max", 4.01),
    "every telemetry report delivered": lambda s: setattr(s.telemetry, "pending", 1),
    # one released estimate outside its interval (or negative, or a group not summing to 1)
    "released estimates in [0, 1], inside their intervals, summing to 1": lambda s: setattr(
        s.fleet_estimates[1], "coverage", sm.IntervalCoverage(intervals=5, covered=5, inconsistent=1)
    ),
    # one metric whose narrowest released interval is too wide (or that released nothing)
    f"every metric released a 95% interval narrower than {NARROW_INTERVAL:g}": lambda s: setattr(
        s.fleet_estimates[2], "narrowest_interval", 0.25
    ),
    f"rollout of {NEXT} reached 100% of in-process devices": lambda s: setattr(s.rollout, "stable", "eibert-0.1.0"),
    # refused, but not by its sha256 (the stage a flipped bit must fail at)
    "a bit-flipped download was injected and rejected": lambda s: setattr(s, "rejected_downloads", {"unpack": 1}),
    f"the edge node switched to {EDGE_WANT}": lambda s: setattr(s.edge_nodes[0], "model_version", "0.1.0"),
}


def test_the_reference_summary_passes_every_check_and_every_check_has_a_mutation() -> None:
    checks = _all(passing())
    assert all(checks.values()), checks
    assert set(checks) == set(MUTATIONS) | {"the cloud restarted and the fleet carried on"}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_each_check_fails_when_what_it_checks_goes_wrong(name: str) -> None:
    s = passing()
    MUTATIONS[name](s)
    checks = _all(s)
    assert checks[name] is False
    assert [n for n, ok in checks.items() if not ok] == [name]  # and only that one


def test_a_rank_failure_fails_both_rank_and_unexplained_checks() -> None:
    """The 422s of issue 13: sessions were served, but one rank call failed and nothing explains it."""
    s = passing()
    _rank_422(s)
    checks = fleet_checks(s)
    assert not checks["every rank request served"] and not checks["no unexplained failures"]


def test_the_interval_width_check_fails_when_a_metric_released_nothing_and_is_absent_without_narrow() -> None:
    s = passing()
    s.fleet_estimates[0].narrowest_interval = None
    name = f"every metric released a 95% interval narrower than {NARROW_INTERVAL:g}"
    assert _all(s)[name] is False
    assert name not in demo_checks(s, next_version=NEXT, edge_want=EDGE_WANT, restarts=1)  # a tiny fleet's demo


def test_the_restart_check_fails_without_exactly_one_restart() -> None:
    for restarts in (0, 2):
        assert not _all(passing(), restarts=restarts)["the cloud restarted and the fleet carried on"]


def test_render_prints_the_unexplained_count_and_examples() -> None:
    s = passing()
    s.failures.by_call["rank"] = {"unexplained": 2}
    s.failures.unexplained = 2
    s.failures.unexplained_examples = ["rank: HTTP 422 from the edge node: text too long"]
    text = render(s)
    assert "unexplained failures: 2" in text
    assert "failed calls   rank: unexplained 2" in text and "HTTP 422 from the edge node" in text
    assert "unexplained failures: 0" in render(passing())
    assert "a/b readout    none" in render(passing())  # said, not silently left out
