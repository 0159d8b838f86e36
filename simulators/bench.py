"""`eibert bench-fleet`: a fleet at scale against a real cloud and edge node, written to BENCHMARKS.md.

The stack is the demo's (a `--dev` cloud on SQLite and one edge node, both started with the stack runner);
the fleet runs in this process, so its wall time, peak memory (`ru_maxrss`) and CPU are this process's own,
and the cloud's CPU is read from /proc while it still runs. No faults are injected: this measures the
steady state, and the coverage of the released 95% intervals over the simulation's ground truth.

    eibert bench-fleet --devices 10000 --days 2 --out BENCHMARKS.md
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import resource
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from model_store.shipped import SHIPPED_BUNDLE
from service.common.manifest import read_manifest
from service.devstack.bench_file import command_line, machine_line, write_section
from service.devstack.server_cpu import process_cpu_s
from simulators.demo import demo_cloud, demo_edge
from simulators.fleet import Fleet, FleetConfig
from simulators.summary import FleetSummary, render

SECTION = "fleet"
EDGE_DEVICES = 10  # "a few over HTTP": the rest rank in-process
DEFAULT_DEVICES = 10_000
DEFAULT_DAYS = 2


@dataclass(frozen=True)
class FleetRun:
    summary: FleetSummary
    wall_s: float  # this process, from before the cloud starts to after the stack is stopped and cleaned up
    fleet_cpu_s: float  # this process: the fleet and its in-process devices
    cloud_cpu_s: float
    max_rss_mib: float  # this process's peak resident memory
    edge_rank_mean_ms: float | None  # the edge node's own mean /v1/rank time, from its /metrics
    load_before: tuple[float, float, float]
    load_after: tuple[float, float, float]


def edge_rank_mean_ms(metrics_text: str) -> float | None:
    """Mean seconds of the edge's /v1/rank requests (Prometheus text: `_sum` over `_count`), in ms."""
    totals = {"sum": 0.0, "count": 0.0}
    for line in metrics_text.splitlines():
        for kind in totals:
            if line.startswith(f"eibert_edge_request_seconds_{kind}{{") and 'route="/v1/rank"' in line:
                totals[kind] += float(line.rsplit(" ", 1)[1])
    return 1000.0 * totals["sum"] / totals["count"] if totals["count"] else None


async def _run(devices: int, days: int, seed: int, work: Path) -> tuple[FleetSummary, float, float | None]:
    """Cloud and edge up, the shipped bundle at 100%, the fleet run; (summary, the cloud's CPU seconds, the
    edge node's own mean rank time in ms)."""
    logs = work / "logs"
    logs.mkdir(parents=True)
    cloud = demo_cloud(work, logs, k_min=None)
    cloud.process.start()
    edge = None
    try:
        await asyncio.to_thread(cloud.process.wait_ready)
        await asyncio.to_thread(cloud.publish, SHIPPED_BUNDLE, 100)
        token = await asyncio.to_thread(cloud.enrolment_token, 1, "bench-edge")
        edge = demo_edge(SHIPPED_BUNDLE, cloud, token, work, logs)
        edge.start()
        await asyncio.to_thread(edge.wait_ready)
        config = FleetConfig(
            cloud_url=cloud.url,
            bundle=SHIPPED_BUNDLE,
            edge_urls=[edge.url],
            edge_devices=min(EDGE_DEVICES, devices),
            devices=devices,
            days=days,
            seed=seed,
            cloud_public_key=cloud.public_key,
            state_dir=work / "fleet",
            admin_token=cloud.admin_token,
        )
        summary = await Fleet(config).run()
        edge_metrics = httpx.get(f"{edge.url}/metrics", timeout=30.0).text
        return summary, process_cpu_s(cloud.process.pid), edge_rank_mean_ms(edge_metrics)
    finally:
        for proc in (edge, cloud.process):
            if proc is not None:
                proc.stop()


def run_fleet(devices: int, days: int, seed: int = 0, profile: Path | None = None) -> FleetRun:
    """One measured run in a fresh temporary stack (removed afterwards); `profile`: write cProfile stats."""
    shm = Path("/dev/shm")  # thousands of SQLite outboxes: in memory, no fsync per device, if the OS offers it
    work = Path(tempfile.mkdtemp(prefix="eibert-bench-fleet-", dir=shm if shm.is_dir() else None))
    load_before = os.getloadavg()
    t0, cpu0 = time.perf_counter(), time.process_time()
    profiler = cProfile.Profile() if profile else None
    try:
        if profiler:
            profiler.enable()
        summary, cloud_cpu, edge_ms = asyncio.run(_run(devices, days, seed, work))
    finally:
        if profiler:
            profiler.disable()
            profiler.dump_stats(str(profile))
        shutil.rmtree(work, ignore_errors=True)
    return FleetRun(
        summary=summary,
        wall_s=time.perf_counter() - t0,
        fleet_cpu_s=time.process_time() - cpu0,
        cloud_cpu_s=cloud_cpu,
        max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
        edge_rank_mean_ms=edge_ms,
        load_before=load_before,
        load_after=os.getloadavg(),
    )


def coverage_line(summary: FleetSummary) -> tuple[int, int]:
    """(intervals covering the truth, intervals) over every released group and category of every metric."""
    return (
        sum(m.coverage.covered for m in summary.fleet_estimates),
        sum(m.coverage.intervals for m in summary.fleet_estimates),
    )


def _latency(s: FleetSummary, mode: str) -> str:
    lat = s.latency.get(mode)
    if lat is None or not lat.calls:
        return "n/a"
    return f"{lat.p50_ms:.2f} / {lat.p99_ms:.2f} ms ({lat.calls} calls)"


def section(run: FleetRun, command: str) -> str:
    """The BENCHMARKS.md section: what ran, on what, and the figures."""
    s, edge = run.summary, run.edge_rank_mean_ms
    covered, total = coverage_line(s)
    inconsistent = sum(m.coverage.inconsistent for m in s.fleet_estimates)
    rows = [
        ("devices", f"{s.devices} ({s.in_process_devices} in-process, {s.http_devices} over HTTP via one edge node)"),
        ("simulated days", str(s.simulated_days)),
        ("wall time", f"{run.wall_s:.0f} s (fleet loop {s.wall_s:.0f} s)"),
        ("CPU", f"fleet process {run.fleet_cpu_s:.0f} s, cloud {run.cloud_cpu_s:.0f} s"),
        ("peak memory (fleet process, max RSS)", f"{run.max_rss_mib:.0f} MiB"),
        ("requests", ", ".join(f"{k} {v}" for k, v in sorted(s.requests.items()))),
        ("sessions / clicks", f"{s.sessions} / {s.clicks}"),
        ("rank p50 / p99, in-process", _latency(s, "in_process")),
        ("rank p50 / p99, HTTP (timed on the client's own threads)", _latency(s, "http")),
        ("rank mean, the edge node's own (its /metrics)", "n/a" if edge is None else f"{edge:.1f} ms"),
        ("telemetry reports", f"recorded {s.telemetry.recorded}, accepted {s.telemetry.accepted}"),
        ("95% intervals covering the truth", f"{covered / total:.1%} ({covered}/{total})" if total else "n/a"),
        ("released estimates outside their interval, negative or not summing to 1", str(inconsistent)),
        ("unexplained failures", str(s.failures.unexplained)),
        ("checks", f"{sum(s.checks.values())}/{len(s.checks)} passed"),
    ]
    for m in s.fleet_estimates:
        narrow = "n/a" if m.narrowest_interval is None else f"{m.narrowest_interval:.3f}"
        rows.append(
            (f"{m.metric}", f"{m.groups_released} groups released ({m.reports} reports), narrowest interval {narrow}")
        )
    load = f"load average {run.load_before[0]:.2f} before, {run.load_after[0]:.2f} after (1 min)"
    lines = [
        "## Fleet at scale",
        "",
        f"Command: `{command}`. Machine: {machine_line()}, shared; {load}.",
        f"Bundle {read_manifest(SHIPPED_BUNDLE).release_id} at 100%, no faults injected. Coverage counts every "
        "category of every released group: its 95% interval against the share among the raw values the "
        "simulated devices privatised in that group.",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in rows),
    ]
    return "\n".join(lines)


def run_bench_fleet(args: argparse.Namespace) -> int:
    """Run the fleet, print its summary, write the section; exit 0 iff every check held."""
    run = run_fleet(args.devices, args.days, args.seed, Path(args.profile) if args.profile else None)
    print(render(run.summary))
    command = command_line(args)
    if args.out:
        write_section(Path(args.out), SECTION, section(run, command))
        print(f"wrote section {SECTION!r} to {args.out}")
    return 0 if all(run.summary.checks.values()) else 1
