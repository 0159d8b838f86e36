"""`docker compose up`'s story, run without Docker: the compose file's own commands as local processes.

Each service of docker-compose.yml that is ours (init, cloud, publisher, edge-1, edge-2, simulator) runs its
`command` (through its `entrypoint`, if any) with its `environment`, in the order `depends_on` gives, with only
what a container would supply rewritten: volume paths (`/secrets`, `/state`, `/data`) become directories under a
temporary root, service host names and container ports become 127.0.0.1 and free ports, Redis is a private
durable `redis-server`, `--host 0.0.0.0` binds loopback. The simulator's summary must then show what issue 25
asked `docker compose up` to show: a released estimate with a 95% interval for every metric, a completed
rollout 10% -> 100%, the A/B readout, and no unexplained failure; Prometheus's view of it (the cloud's
/metrics) must carry the estimates and the readout too.

This is the compose file's behaviour, not Docker's: images, healthchecks and networking are checked statically
by tests/test_compose.py and tests/test_dockerfile.py.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from model_store.data.paths import DATA_ENV, data_root
from model_store.shipped import SHIPPED_BUNDLE
from service.devstack.processes import ServerProcess, free_port, http_ok, redis_process

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
ORDER = ["init", "cloud", "publisher", "edge-1", "edge-2", "simulator"]
SIM_TIMEOUT_S = 540

pytestmark = pytest.mark.skipif(shutil.which("redis-server") is None, reason="needs redis-server")


class Stack:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.ports = {"cloud": free_port(), "edge-1": free_port(), "edge-2": free_port()}
        self.servers: list[ServerProcess] = []
        self.redis = redis_process(root / "redis")

    def rewrite(self, text: str, service: str) -> str:
        subs = [
            ("redis://redis:6379/0", self.redis.url),
            ("http://cloud:8000", f"http://127.0.0.1:{self.ports['cloud']}"),
            ("http://edge-1:8080", f"http://127.0.0.1:{self.ports['edge-1']}"),
            ("http://edge-2:8080", f"http://127.0.0.1:{self.ports['edge-2']}"),
            ("/secrets", str(self.root / "secrets")),
            ("/state", str(self.root / f"{service}-state")),
        ]
        for old, new in subs:
            text = text.replace(old, new)
        return text

    def argv(self, service: str) -> list[str]:
        svc = SERVICES[service]
        cmd = [self.rewrite(a, service) for a in svc["command"]]
        if service in self.ports:  # the container's port becomes a free one; loopback instead of every interface
            port = str(self.ports[service])
            cmd = [port if prev == "--port" else a for prev, a in zip(["", *cmd[:-1]], cmd, strict=True)]
            cmd = ["127.0.0.1" if prev == "--host" else a for prev, a in zip(["", *cmd[:-1]], cmd, strict=True)]
        if cmd[0] == "python":
            cmd[0] = sys.executable
        elif cmd[0] == "eibert":
            cmd[0] = str(Path(sys.executable).with_name("eibert"))
        entry = svc.get("entrypoint")
        if entry:
            cmd = [*(self.rewrite(a, service).replace("$$", "$") for a in entry), *cmd]
        return cmd

    def env(self, service: str) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("EIBERT_")}
        for k, v in (SERVICES[service].get("environment") or {}).items():
            value = self.rewrite(str(v), service)
            if value.startswith("${"):  # interpolated from the user's shell: unset here
                value = ""
            if k == "EIBERT_CLOUD_DATA_DIR":
                value = str(self.root / "cloud-data")
            if k == DATA_ENV:
                value = str(data_root())
            base[k] = value
        return base

    def run_once(self, service: str, timeout: float = 120) -> str:
        done = subprocess.run(
            self.argv(service), cwd=ROOT, env=self.env(service), capture_output=True, text=True, timeout=timeout
        )
        (self.root / f"{service}.log").write_text(done.stdout + done.stderr)
        tail = f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        assert done.returncode == 0, f"{service} exited {done.returncode}:\n{tail}"
        return done.stdout

    def serve(self, service: str) -> ServerProcess:
        url = f"http://127.0.0.1:{self.ports[service]}"
        proc = ServerProcess(
            service, self.argv(service), probe=http_ok(f"{url}/readyz"), url=url, port=self.ports[service],
            env=self.env(service), log_path=self.root / f"{service}.log",
        )  # fmt: skip
        self.servers.append(proc)
        proc.start()
        proc.wait_ready(90)
        return proc

    def stop(self) -> None:
        for proc in reversed(self.servers):
            proc.stop()
        self.redis.stop()


@pytest.fixture(scope="module")
def story(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str, dict]]:
    stack = Stack(tmp_path_factory.mktemp("compose"))
    stack.redis.start()
    stack.redis.wait_ready()
    try:
        for service in ORDER:
            deps = SERVICES[service].get("depends_on") or {}
            assert set(deps) <= {"redis", *ORDER[: ORDER.index(service)]}, f"{service} starts before {deps}"
            if service in stack.ports:
                stack.serve(service)
            elif service == "simulator":
                out = stack.run_once(service, timeout=SIM_TIMEOUT_S)
            else:
                stack.run_once(service)
        summary = json.loads((stack.root / "simulator-state" / "summary.json").read_text())
        yield stack, out, summary
    finally:
        stack.stop()


def test_compose_commands_are_what_this_test_runs() -> None:
    assert [s for s in ORDER if s in SERVICES] == ORDER
    sim = SERVICES["simulator"]["command"]
    assert "--rollout-bundle" in sim and "--summary-json" in sim and shlex.join(sim).startswith("eibert simulate")


def test_up_prints_released_estimates_a_completed_rollout_and_the_ab_readout(story) -> None:
    stack, out, summary = story
    assert summary["checks"] and all(summary["checks"].values()), summary["checks"]
    for metric in ("top_item_clicked", "latency_bucket", "top_genre"):
        line = next(line for line in out.splitlines() if line.startswith(f"fleet metric   {metric}:"))
        assert not line.split(":", 1)[1].strip().startswith("0 groups released"), line
    assert "95%" in out or "CI" in out or "[" in out
    assert "rollout" in out and "to 10%" in out and "to 100%" in out, out[-4000:]
    assert not any(line.startswith("a/b readout    none") for line in out.splitlines()), out[-3000:]
    assert "unexplained failures: 0" in out, out[-3000:]
    assert "dev-mode cloud" in out  # the summary says the days were compressed
    assert "DEV MODE" in (stack.root / "cloud.log").read_text()  # and so does the cloud's log
    metrics = httpx.get(f"http://127.0.0.1:{stack.ports['cloud']}/metrics", timeout=30).text
    assert "eibert_cloud_fleet_estimate{" in metrics and "eibert_cloud_ab_readout{" in metrics
    clock = httpx.get(f"http://127.0.0.1:{stack.ports['cloud']}/v1/clock", timeout=30).json()
    assert clock["advanceable"] is True
    for edge in ("edge-1", "edge-2"):
        info = httpx.get(f"http://127.0.0.1:{stack.ports[edge]}/v1/model", timeout=30).json()
        assert info["version"] == SHIPPED_BUNDLE.name, info  # the release id of the bundle rolled out
