"""`eibert demo`: the whole system on one machine, no Docker, in a few minutes, then a summary and checks.

The scenario, in order: start the cloud (`eibert cloud --dev`, SQLite, keys generated in a temp dir) on a free
port; publish the shipped bundle and roll it out to 100%; start one edge node (`eibert edge`, polling the cloud
every second); run the fleet (most devices in-process, a few ranking through the edge node over HTTP). During
the run: publish a second bundle and roll it out 10% -> 100%, corrupt one bundle download (a flipped bit, which
verification must reject while the old model keeps serving), and restart the cloud process. Then: check that
the edge node switched too, print the summary, stop both processes and exit 0 only if every check held.

The second bundle is `model_store/bundles/eibert-0.3.0` when it exists, else the shipped bundle's files under a
new manifest version (`0.1.0+rollout`): same weights, a distinct, signed, immutable version to roll out.
Logs of the two processes and the JSON summary are kept under `<--cache>/demo/`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from service.cloud.client import publish_bundle
from service.common.contract import BUNDLE_FILES, MANIFEST_FILE
from service.common.manifest import read_manifest
from simulators.checks import demo_checks
from simulators.cli import SHIPPED_BUNDLE, write_summary
from simulators.faults import FaultSpec
from simulators.fleet import Fleet, FleetConfig, ScheduledEvent
from simulators.summary import FleetSummary, render

log = logging.getLogger(__name__)

NEXT_BUNDLE = SHIPPED_BUNDLE.parent / "eibert-0.3.0"
ROLLOUT_SUFFIX = "+rollout"
DEMO_ENROL_RATE = 100_000
DEMO_K_MIN = 50  # the cloud's default is 100; a 300-device demo fleet splits across versions and days
EDGE_DEVICES = 10
READY_TIMEOUT_S = 60.0
EDGE_SWITCH_TIMEOUT_S = 20.0
ADMIN_RETRY_S = 60.0
STOP_TIMEOUT_S = 15.0


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class ServiceProcess:
    """One service (`python -m service.cloud` or `python -m service.edge`, the flags of `eibert cloud` and
    `eibert edge`) as a child process, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], *, env: dict[str, str], log_path: Path, url: str) -> None:
        self.name = name  # "cloud" or "edge": the service package it runs
        self.argv = argv
        self.env = env
        self.log_path = log_path
        self.url = url
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log_file = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", f"service.{self.name}", *self.argv],
                env=self.env,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        finally:
            log_file.close()

    async def wait_ready(self, timeout_s: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout_s
        async with httpx.AsyncClient(timeout=2.0) as client:
            while time.monotonic() < deadline:
                if self.proc is not None and self.proc.poll() is not None:
                    raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.log_path}")
                try:
                    if (await client.get(f"{self.url}/readyz")).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready after {timeout_s:.0f} s; see {self.log_path}")

    def stop(self) -> int | None:
        """SIGTERM, wait, SIGKILL only if it will not stop; returns the exit status."""
        proc, self.proc = self.proc, None
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        return proc.returncode


class Scenario:
    def __init__(self, args: argparse.Namespace, work: Path, logs: Path) -> None:
        self.args = args
        self.work = work
        self.logs = logs
        self.cloud_url = f"http://127.0.0.1:{_free_port()}"
        self.edge_url = f"http://127.0.0.1:{_free_port()}"
        env = {
            **os.environ,
            "EIBERT_CLOUD_DATA_DIR": str(work / "cloud"),
            "EIBERT_CLOUD_K_MIN": str(DEMO_K_MIN),
            # the whole demo fleet enrols from 127.0.0.1, with one enrolment token, in its first simulated hour
            "EIBERT_CLOUD_ENROL_RATE_PER_SOURCE": str(DEMO_ENROL_RATE),
            "EIBERT_CLOUD_ENROL_RATE_PER_TOKEN": str(DEMO_ENROL_RATE),
        }
        env.pop("EIBERT_ADMIN_TOKEN", None)  # dev mode generates its own
        self.cloud = ServiceProcess(
            "cloud",
            ["--dev", "--port", self.cloud_url.rsplit(":", 1)[1], "--store", f"sqlite:///{work / 'cloud.db'}"],
            env=env,
            log_path=logs / "cloud.log",
            url=self.cloud_url,
        )
        self.edge: ServiceProcess | None = None
        self.admin_token = ""
        self.public_key = ""
        self.next_bundle = self._next_bundle()
        self.next_version = read_manifest(self.next_bundle).release_id
        self.restarts: list[float] = []

    def _next_bundle(self) -> Path:
        if NEXT_BUNDLE.is_dir():
            return NEXT_BUNDLE
        out = self.work / "next-bundle"
        out.mkdir()
        for name in BUNDLE_FILES:
            shutil.copy2(SHIPPED_BUNDLE / name, out / name)
        manifest = json.loads((SHIPPED_BUNDLE / MANIFEST_FILE).read_text(encoding="utf-8"))
        manifest["version"] = f"{manifest['version']}{ROLLOUT_SUFFIX}"  # files and their hashes unchanged
        (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
        return out

    # -- admin over HTTP, retried while the cloud restarts ----------------------------------------------------

    async def _admin(self, method: str, path: str, body: dict) -> dict:
        deadline = time.monotonic() + ADMIN_RETRY_S
        async with httpx.AsyncClient(base_url=self.cloud_url, timeout=30.0) as client:
            while True:
                try:
                    resp = await client.request(
                        method, path, json=body, headers={"Authorization": f"Bearer {self.admin_token}"}
                    )
                    resp.raise_for_status()
                    return resp.json()
                except httpx.TransportError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.5)

    async def _publish(self, bundle: Path) -> str:
        deadline = time.monotonic() + ADMIN_RETRY_S
        while True:
            try:
                body = await asyncio.to_thread(publish_bundle, bundle, self.cloud_url, self.admin_token)
                return str(body["version"])
            except Exception:  # EibertError wraps the connection error while the cloud restarts
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)

    async def rollout(self, version: str, percent: int) -> str:
        state = await self._admin("PUT", "/v1/rollout", {"version": version, "percent": percent})
        return f"rollout: {version} to {percent}% (stable {state['stable']}, candidate {state['candidate']})"

    async def publish_next_and_canary(self) -> str:
        version = await self._publish(self.next_bundle)
        return f"published {version}; " + await self.rollout(version, 10)

    async def restart_cloud(self) -> str:
        """Stop the cloud now and bring it back in the background, so devices meet the outage."""
        t0 = time.monotonic()
        await asyncio.to_thread(self.cloud.stop)

        async def back() -> None:
            await asyncio.sleep(1.0)
            self.cloud.start()
            await self.cloud.wait_ready()
            self.restarts.append(time.monotonic() - t0)
            _say(f"           cloud back after {self.restarts[-1]:.1f} s (same SQLite store, same signing key)")

        self._restart_task = asyncio.get_running_loop().create_task(back())
        return "cloud process stopped (SIGTERM) and restarting in the background"

    async def _enrolment_token(self, max_devices: int, label: str) -> str:
        body = await self._admin("POST", "/v1/enrolment-tokens", {"max_devices": max_devices, "label": label})
        return str(body["token"])

    # -- the scenario ---------------------------------------------------------------------------------------

    async def run(self) -> FleetSummary:
        self.cloud.start()
        await self.cloud.wait_ready()
        self.admin_token = (self.work / "cloud" / "dev-admin-token").read_text().strip()
        async with httpx.AsyncClient(base_url=self.cloud_url, timeout=10.0) as client:
            self.public_key = (await client.get("/v1/signing-key")).json()["public_key"]
        _say(f"cloud ready at {self.cloud_url} (SQLite in {self.work}); signing key {self.public_key}")
        first = await self._publish(SHIPPED_BUNDLE)
        _say(f"published {first}; " + await self.rollout(first, 100))

        edge_port = self.edge_url.rsplit(":", 1)[1]
        self.edge = ServiceProcess(
            "edge",
            ["--bundle", str(SHIPPED_BUNDLE), "--cloud", self.cloud_url, "--cloud-public-key", self.public_key,
             "--poll-interval", "1", "--port", edge_port, "--state-dir", str(self.work / "edge"),
             "--device-id", "demo-edge-1"],
            env={**os.environ, "EIBERT_EDGE_ENROLMENT_TOKEN": await self._enrolment_token(1, "demo-edge")},
            log_path=self.logs / "edge.log",
            url=self.edge_url,
        )  # fmt: skip
        self.edge.start()
        await self.edge.wait_ready()
        _say(f"edge node ready at {self.edge_url}")

        hours = self.args.days * 24
        canary_at = max(2, int(hours * 0.3))
        full_at = max(canary_at + 4, int(hours * 0.6))
        config = FleetConfig(
            cloud_url=self.cloud_url,
            bundle=SHIPPED_BUNDLE,
            edge_urls=[self.edge_url],
            edge_devices=min(EDGE_DEVICES, max(1, self.args.devices // 10)),
            devices=self.args.devices,
            days=self.args.days,
            seed=self.args.seed,
            faults=FaultSpec(bitflip=1, drop=0.01, cloud_restart=1),
            cloud_public_key=self.public_key,
            state_dir=self.work / "fleet",
            admin_token=self.admin_token,  # issues the fleet's enrolment token; advances the dev cloud's clock
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

    async def _edge_after_rollout(self, fleet: Fleet):  # -> EdgeNodeSummary
        deadline = time.monotonic() + EDGE_SWITCH_TIMEOUT_S
        want = read_manifest(self.next_bundle).version
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
                edge_want=read_manifest(self.next_bundle).version,
                restarts=len(self.restarts),
            )
        )

    def stop(self) -> dict[str, int | None]:
        codes = {}
        for proc in (self.edge, self.cloud):
            if proc is not None:
                codes[proc.name] = proc.stop()
        return codes


def cmd_demo(args: argparse.Namespace) -> int:
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
    summary.notes.append(
        f"demo wall time {time.perf_counter() - t0:.1f} s; processes stopped with {codes}; "
        "a Redis restart is not exercised here: the demo's cloud uses SQLite"
    )
    _say(render(summary))
    write_summary(summary, str(logs / "summary.json"))
    ok = all(summary.checks.values())
    _say(f"demo {'passed' if ok else 'FAILED'}: {sum(summary.checks.values())}/{len(summary.checks)} checks")
    return 0 if ok else 1
