"""`eibert demo`: the whole system on one machine, no Docker, in a few minutes, then a summary and checks.

The scenario, in order: start the dev stack's cloud (`service.devstack`: `eibert cloud --dev` on SQLite in a
temp dir, with an admin token and a signing key made for it) on a free port; publish the shipped bundle and
roll it out to 100%; start one edge node (`eibert edge`, polling the cloud every second); run the fleet (most
devices in-process, a few ranking through the edge node over HTTP). During the run: publish a second bundle
and roll it out 10% -> 100%, corrupt one bundle download (a flipped bit, which verification must reject while
the old model keeps serving), and restart the cloud process. Then: check that the edge node switched too, stop
both processes, run the position-bias experiment in process (two simulated weeks of naive vs
position-corrected learners, `simulators.position_experiment`), print the summary and exit 0 only if every
check held.

The fleet starts on the previous bundle (`model_store.shipped.PREVIOUS_BUNDLE`) and the rollout moves it to the
shipped one (`SHIPPED_BUNDLE`): the same encoder with the learned ranker instead of the content ranker, a distinct,
signed, immutable version, so the A/B readout shows what the new ranker does to the simulated fleet's clicks.
Logs of the two processes and the JSON summary are kept under `<--cache>/demo/`.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import httpx

from model_store.shipped import PREVIOUS_BUNDLE, SHIPPED_BUNDLE
from service.common.manifest import read_manifest
from service.devstack.processes import ServerProcess
from service.devstack.stack import DevCloud, dev_cloud, dev_edge
from simulators.checks import NARROW_INTERVAL, demo_checks
from simulators.cli_args import DEMO_DEVICES, DEMO_POSITION_USERS
from simulators.faults import FaultSpec
from simulators.fleet import Fleet, FleetConfig, ScheduledEvent
from simulators.position_experiment import PositionBiasConfig, run_position_bias
from simulators.rollout_plan import CANARY_PERCENT, rollout_hours
from simulators.summary import EdgeNodeSummary, FleetSummary, render, write_summary

log = logging.getLogger(__name__)
T = TypeVar("T")

DEMO_K_MIN = 50  # the cloud's default is 100; a demo fleet splits across versions and days (and may be small)
EDGE_DEVICES = 10
READY_TIMEOUT_S = 60.0
EDGE_SWITCH_TIMEOUT_S = 20.0
ADMIN_RETRY_S = 60.0
STOP_TIMEOUT_S = 15.0
POSITION_DAYS = 14  # issue 21: NDCG@10 of served slates after two simulated weeks


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def demo_cloud(work: Path, logs: Path, *, k_min: int | None) -> DevCloud:
    """The dev stack's cloud on SQLite under `work`, not started; `k_min` None: the cloud's own. The whole fleet
    enrols from 127.0.0.1 with one enrolment token in its first simulated hour: the dev stack lifts the
    enrolment rate limits."""
    settings = {"K_MIN": str(k_min)} if k_min is not None else None
    return dev_cloud(work, log_path=logs / "cloud.log", settings=settings)


def demo_edge(bundle: Path, cloud: DevCloud, token: str, work: Path, logs: Path) -> ServerProcess:
    """`eibert edge` on a free port, starting on `bundle` and polling the cloud every second; not started."""
    args = ["--poll-interval", "1", "--device-id", "demo-edge-1"]
    return dev_edge(bundle, cloud, work / "edge", token=token, log_path=logs / "edge.log", args=args)


class Scenario:
    def __init__(self, args: argparse.Namespace, work: Path, logs: Path) -> None:
        self.args = args
        self.work = work
        self.logs = logs
        self.cloud = demo_cloud(work, logs, k_min=DEMO_K_MIN)
        self.cloud_url = self.cloud.url
        self.edge: ServerProcess | None = None
        self.next_bundle = SHIPPED_BUNDLE
        self.next_version = read_manifest(self.next_bundle).release_id
        self.restarts: list[float] = []

    # -- admin over HTTP, retried while the cloud restarts ----------------------------------------------------

    async def _retried(self, call: Callable[[], T], transient: Callable[[Exception], bool]) -> T:
        """`call()` in a worker thread, again every 0.5 s while it fails with a `transient` error (the cloud
        is restarting), for at most ADMIN_RETRY_S."""
        deadline = time.monotonic() + ADMIN_RETRY_S
        while True:
            try:
                return await asyncio.to_thread(call)
            except Exception as exc:
                if not transient(exc) or time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def _publish(self, bundle: Path) -> str:
        body = await self._retried(
            lambda: self.cloud.publish(bundle, percent=None),
            lambda _exc: True,  # EibertError wraps the connection error while the cloud restarts
        )
        return str(body["version"])

    async def rollout(self, version: str, percent: int) -> str:
        def call() -> dict:
            with self.cloud.admin() as admin:
                return admin.set_rollout(version, percent)

        # the client wraps a connection error in EibertError; only that (not a refusal) is worth a retry
        state = await self._retried(call, lambda exc: isinstance(exc.__cause__, httpx.TransportError))
        return f"rollout: {version} to {percent}% (stable {state['stable']}, candidate {state['candidate']})"

    async def publish_next_and_canary(self) -> str:
        version = await self._publish(self.next_bundle)
        return f"published {version}; " + await self.rollout(version, CANARY_PERCENT)

    async def restart_cloud(self) -> str:
        """Stop the cloud now and bring it back in the background, so devices meet the outage."""
        t0 = time.monotonic()
        await asyncio.to_thread(self.cloud.process.stop, STOP_TIMEOUT_S)

        async def back() -> None:
            await asyncio.sleep(1.0)
            self.cloud.process.start()
            await asyncio.to_thread(self.cloud.process.wait_ready, READY_TIMEOUT_S)
            self.restarts.append(time.monotonic() - t0)
            _say(f"           cloud back after {self.restarts[-1]:.1f} s (same SQLite store, same signing key)")

        self._restart_task = asyncio.get_running_loop().create_task(back())
        return "cloud process stopped (SIGTERM) and restarting in the background"

    # -- the scenario ---------------------------------------------------------------------------------------

    async def run(self) -> FleetSummary:
        self.cloud.process.start()
        await asyncio.to_thread(self.cloud.process.wait_ready, READY_TIMEOUT_S)
        _say(f"cloud ready at {self.cloud_url} (SQLite in {self.work}); signing key {self.cloud.public_key}")
        first = await self._publish(PREVIOUS_BUNDLE)
        _say(f"published {first}; " + await self.rollout(first, 100))

        token = await asyncio.to_thread(self.cloud.enrolment_token, 1, "demo-edge")
        self.edge = demo_edge(PREVIOUS_BUNDLE, self.cloud, token, self.work, self.logs)
        self.edge.start()
        await asyncio.to_thread(self.edge.wait_ready, READY_TIMEOUT_S)
        self.edge_url = self.edge.url
        _say(f"edge node ready at {self.edge_url}")

        canary_at, full_at = rollout_hours(self.args.days)
        config = FleetConfig(
            cloud_url=self.cloud_url,
            bundle=PREVIOUS_BUNDLE,
            edge_urls=[self.edge_url],
            edge_devices=min(EDGE_DEVICES, max(1, self.args.devices // 10)),
            devices=self.args.devices,
            days=self.args.days,
            seed=self.args.seed,
            faults=FaultSpec(bitflip=1, drop=0.01, cloud_restart=1),
            cloud_public_key=self.cloud.public_key,
            state_dir=self.work / "fleet",
            admin_token=self.cloud.admin_token,  # issues the fleet's enrolment token; advances the dev cloud's clock
        )
        events = [
            ScheduledEvent(canary_at, self.publish_next_and_canary),
            ScheduledEvent(full_at, lambda: self.rollout(self.next_version, 100)),
        ]
        fleet = Fleet(config, events=events, restart_cloud=self.restart_cloud, timeline=lambda s: _say(f"  {s}"))
        summary = await fleet.run()
        if getattr(self, "_restart_task", None) is not None:
            await self._restart_task
        summary.edge_nodes = [await self._edge_after_rollout(fleet)]
        self._checks(summary)
        return summary

    async def _edge_after_rollout(self, fleet: Fleet) -> EdgeNodeSummary:
        deadline = time.monotonic() + EDGE_SWITCH_TIMEOUT_S
        want = self.next_version
        async with httpx.AsyncClient(timeout=5.0) as client:
            while True:
                status = await fleet.edge_status(client, self.edge_url)
                if status.model_version == want or time.monotonic() > deadline:
                    return status
                await asyncio.sleep(0.5)

    def _checks(self, summary: FleetSummary) -> None:
        caused = sum(c.get("cloud-restart", 0) for c in summary.failures.by_call.values())
        for fault in summary.faults:
            if fault.kind == "cloud-restart" and self.restarts:
                fault.handled = (
                    f"cloud down {self.restarts[0]:.1f} s, back on the same SQLite store and signing key; devices' "
                    f"failed calls while it was down ({caused}) were retried: polls the next simulated hour, "
                    "telemetry from the outboxes"
                )
        summary.checks.update(
            demo_checks(
                summary,
                next_version=self.next_version,
                edge_want=self.next_version,
                restarts=len(self.restarts),
                narrow=NARROW_INTERVAL if self.args.devices >= DEMO_DEVICES else None,
            )
        )

    def stop(self) -> dict[str, int | None]:
        codes = {}
        for proc in (self.edge, self.cloud.process):
            if proc is not None:
                codes[proc.name] = proc.stop(STOP_TIMEOUT_S)
        return codes


def run_demo(args: argparse.Namespace) -> int:
    """Run the scenario; exit 0 only if every check held."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    t0 = time.perf_counter()
    logs = Path(args.cache) / "demo"
    logs.mkdir(parents=True, exist_ok=True)
    for name in ("cloud.log", "edge.log"):
        (logs / name).unlink(missing_ok=True)
    work = Path(tempfile.mkdtemp(prefix="eibert-demo-"))
    scenario = Scenario(args, work, logs)
    summary: FleetSummary | None = None
    try:
        _say(f"eibert demo: {args.devices} devices, {args.days} simulated days; logs in {logs}")
        summary = asyncio.run(scenario.run())
    finally:
        codes = scenario.stop()
        shutil.rmtree(work, ignore_errors=True)
    users = min(getattr(args, "position_bias_users", DEMO_POSITION_USERS), args.devices)
    if users >= 2:  # two simulated weeks of naive vs position-corrected learners, in process (no cloud)
        _say(f"position-bias experiment: {users} users, {POSITION_DAYS} simulated days ...")
        summary.position_bias = run_position_bias(PositionBiasConfig(users=users, days=POSITION_DAYS, seed=args.seed))
    summary.notes.append(
        f"demo wall time {time.perf_counter() - t0:.1f} s; processes stopped with {codes}; "
        "a Redis restart is not exercised here: the demo's cloud uses SQLite"
    )
    _say(render(summary))
    write_summary(summary, str(logs / "summary.json"))
    ok = all(summary.checks.values())
    _say(f"demo {'passed' if ok else 'FAILED'}: {sum(summary.checks.values())}/{len(summary.checks)} checks")
    return 0 if ok else 1
