"""The checks a fleet run and the demo print (PASS/FAIL) and exit on, as pure functions of the summary.

They read only the `FleetSummary` (plus, for the demo, what the scenario itself knows), so a test can build a
summary that passes and change one field to make each check fail (tests/simulators/test_checks.py): a check
that no summary can fail would be no check.
"""

from __future__ import annotations

from simulators.summary import FleetSummary

CORRUPTING_FAULTS = ("bitflip", "truncate")
EPSILON_SLACK = 1e-9
NARROW_INTERVAL = 0.2  # the demo's fleet must release, per metric, at least one 95% interval narrower than this


def injected(summary: FleetSummary, kind: str) -> int:
    return sum(f.injected for f in summary.faults if f.kind == kind)


def fleet_checks(summary: FleetSummary) -> dict[str, bool]:
    """What any fleet run must satisfy, whatever faults it injected."""
    corrupted = sum(injected(summary, k) for k in CORRUPTING_FAULTS)
    return {
        "every device enrolled": summary.enrolled == summary.devices,
        "every rank request served": summary.sessions > 0 and not summary.failures.by_call.get("rank"),
        "no unexplained failures": summary.failures.unexplained == 0,
        "every corrupted download rejected": sum(summary.rejected_downloads.values()) >= corrupted,
        "versions account for every device": sum(summary.versions.values()) == summary.devices,
        "per-device daily epsilon within the budget": summary.epsilon.per_device_day_max
        <= summary.epsilon.daily_budget + EPSILON_SLACK,
        "every telemetry report delivered": summary.telemetry.pending == 0,
        "released estimates in [0, 1], inside their intervals, summing to 1": not any(
            m.coverage.inconsistent for m in summary.fleet_estimates
        ),
    }


def demo_checks(
    summary: FleetSummary, *, next_version: str, edge_want: str, restarts: int, narrow: float | None = None
) -> dict[str, bool]:
    """What the demo's scenario must show on top: the rollout, the rejected bit flip, the restart, the edge;
    with `narrow`, also that every metric released an interval narrower than it (a fleet large enough to say
    something: the demo asks it of its default fleet size, not of the tests' tiny fleets)."""
    r = summary.rollout
    bitflips = injected(summary, "bitflip")
    checks = {
        f"rollout of {next_version} reached 100% of in-process devices": r.stable == next_version
        and summary.versions.get(next_version, 0) >= r.devices_following,
        "a bit-flipped download was injected and rejected": bitflips >= 1
        and summary.rejected_downloads.get("sha256", 0) >= bitflips,
        "the cloud restarted and the fleet carried on": restarts == 1,
        f"the edge node switched to {edge_want}": bool(summary.edge_nodes)
        and summary.edge_nodes[0].model_version == edge_want,
    }
    if narrow is not None:
        checks[f"every metric released a 95% interval narrower than {narrow:g}"] = bool(
            summary.fleet_estimates
        ) and all(m.narrowest_interval is not None and m.narrowest_interval < narrow for m in summary.fleet_estimates)
    return checks
