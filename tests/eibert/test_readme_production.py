"""The README's production block, run command by command against real processes.

The block under "Production: a cloud and an edge node, from this README alone" is read from README.md and each
command runs in bash exactly as written, with only these substitutions: `$EIBERT_HOME` is a temporary directory,
the cloud and the edge listen on free ports, Redis is a test database, and the edge polls every second instead
of every 30 s. The two server commands start in the background (the README runs them in terminals of their own);
after each step the test checks what a newcomer would look at: `/readyz`, `/v1/model`, the edge's log.
So a README step that does not run, a missing secret's creation, a flag the CLI does not take or an edge node
that cannot enrol from what the README says fails here.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis

from service.devstack.processes import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
HEADING = "### Production: a cloud and an edge node, from this README alone"
WAIT_S = 90.0
STEPS = {  # what a newcomer needs, in this order (issue 25)
    "keygen": r"^eibert keygen --out ",
    "token file": r"token_urlsafe.*> \S*admin-token",
    "cloud": r"EIBERT_ADMIN_TOKEN_FILE=.*eibert cloud --store redis://",
    "publish": r"^eibert publish --bundle ",
    "enrolment token": r"--enrolment-token \S+:\d+|^\(?umask 077 && eibert enrolment-tokens issue --max-devices \d+",
    "edge": r"^eibert edge --bundle \S+ --cloud .*--enrolment-token-file ",
    "rollout": r"^eibert rollout set \S+ 10 ",
    "rollback": r"^eibert rollout rollback ",
}


def production_block(text: str) -> list[str]:
    """The block's commands, one per line (comments and blank lines dropped)."""
    section = text[text.index(HEADING) :]
    m = re.search(r"```bash\n(.*?)```", section, flags=re.S)
    assert m, "no bash block in the production section"
    return [line.strip() for line in m.group(1).splitlines() if line.strip() and not line.lstrip().startswith("#")]


def redis_url() -> str:
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw"))
    return f"redis://127.0.0.1:6379/{(12 - worker) % 16}"  # the cloud tests use 14 + worker


def localised(cmd: str, *, home: Path, cloud_port: int, edge_port: int, store: str) -> str:
    """The README's command with this test's home, ports, Redis database and poll interval."""
    subs = {
        "/srv/eibert": str(home),
        "127.0.0.1:8000": f"127.0.0.1:{cloud_port}",
        "--port 8000": f"--port {cloud_port}",
        "--port 8080": f"--port {edge_port}",
        "redis://127.0.0.1:6379/0": store,
        "--poll-interval 30": "--poll-interval 1",
        "--host 0.0.0.0": "--host 127.0.0.1",
    }
    for old, new in subs.items():
        cmd = cmd.replace(old, new)
    return cmd


class Shell:
    """Runs the block's lines in bash one at a time, carrying exported variables from one line to the next."""

    def __init__(self, cwd: Path, env: dict[str, str], logs: Path) -> None:
        self.cwd = cwd
        self.env = env
        self.logs = logs
        self.servers: list[tuple[subprocess.Popen, Path]] = []

    def run(self, cmd: str) -> str:
        env_file = self.logs / "env"
        script = f"set -euo pipefail\n{cmd}\nenv -0 > {env_file}\n"
        done = subprocess.run(
            ["bash", "-c", script], cwd=self.cwd, env=self.env, capture_output=True, text=True, timeout=120
        )
        assert done.returncode == 0, f"{cmd}\nexit {done.returncode}\n{done.stdout}\n{done.stderr}"
        self.env = dict(kv.split("=", 1) for kv in env_file.read_text().split("\0") if "=" in kv)
        return done.stdout

    def start(self, cmd: str, name: str) -> Path:
        log = self.logs / f"{name}.log"
        with log.open("wb") as fh:
            proc = subprocess.Popen(
                ["bash", "-c", cmd], cwd=self.cwd, env=self.env, stdout=fh, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        self.servers.append((proc, log))
        return log

    def stop(self) -> None:
        for proc, _ in reversed(self.servers):
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


def wait_for(what: str, check: Callable[[], bool], logs: list[Path]) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    tails = "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in logs if p.exists())
    pytest.fail(f"timed out waiting for {what}\n{tails}")


@pytest.fixture
def shell(tmp_path: Path) -> Iterator[Shell]:
    venv_bin = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("EIBERT_")}
    env["PATH"] = f"{venv_bin}:{env.get('PATH', '')}"
    (tmp_path / "logs").mkdir()
    sh = Shell(ROOT, env, tmp_path / "logs")
    yield sh
    sh.stop()


def test_the_readme_production_block_runs_command_by_command(shell: Shell, tmp_path: Path) -> None:
    store = redis_url()
    redis.Redis.from_url(store).flushdb()
    cloud_port, edge_port = free_port(), free_port()
    cloud_url, edge_url = f"http://127.0.0.1:{cloud_port}", f"http://127.0.0.1:{edge_port}"
    home = tmp_path / "home"
    steps = [localised(c, home=home, cloud_port=cloud_port, edge_port=edge_port, store=store) for c in README_BLOCK]
    for step in STEPS.values():  # the list, in the README's order
        assert any(re.search(step, c) for c in steps), f"the production block has no step matching {step!r}"
    order = [next(i for i, c in enumerate(steps) if re.search(step, c)) for step in STEPS.values()]
    assert order == sorted(order), f"steps out of order: {dict(zip(STEPS, order, strict=True))}"

    released = [m.group(1) for c in steps if (m := re.match(r"eibert rollout set (\S+) 100\b", c))]
    assert len(released) == 2, "the block releases a first version and then a second one"
    cloud_log = edge_log = tmp_path / "none"
    edge = httpx.Client(base_url=edge_url, timeout=5)
    served: list[str] = []

    def model() -> dict:
        return edge.get("/v1/model").json()

    for cmd in steps:
        if re.search(r"(^|\s)eibert cloud\b", cmd):
            cloud_log = shell.start(cmd, "cloud")
            wait_for("the cloud's /readyz", lambda: httpx.get(f"{cloud_url}/readyz").status_code == 200, [cloud_log])
        elif re.search(r"(^|\s)eibert edge\b", cmd):
            edge_log = shell.start(cmd, "edge")
            wait_for("the edge's /readyz", lambda: edge.get("/readyz").status_code == 200, [edge_log, cloud_log])
            wait_for("the edge to follow the rollout", lambda: model()["update"]["state"] in ("up_to_date", "updated"),
                     [edge_log, cloud_log])  # fmt: skip
            served.append(model()["version"])
        else:
            out = shell.run(cmd)
            if "eibert keygen" in cmd:
                assert (home / "secrets" / "signing.pem").stat().st_mode & 0o777 == 0o600
            m = re.match(r"eibert rollout set (\S+) 100\b", cmd)
            if m and served:  # the node follows a full rollout within a few polls
                want = m.group(1)
                wait_for(f"the edge to serve {want}", lambda w=want: model()["version"] == w, [edge_log, cloud_log])
                served.append(want)
            if "eibert rollout rollback" in cmd:
                before = served[-1]
                wait_for("the edge to roll back", lambda b=before: model()["version"] != b, [edge_log, cloud_log])
                served.append(model()["version"])
            if "eibert rollout show" in cmd:
                assert f'"stable": "{released[-1]}"' in out, out

    assert served == [released[0], released[-1], released[0]], served  # start, rollout, rollback
    info = model()
    assert info["update"]["last_error"] is None and not info["update"]["stale"], info["update"]
    assert info["update"]["metadata_age_s"] < 60, "a fresh offer must not read as hours old"
    assert edge.get("/readyz").status_code == 200
    text = edge_log.read_text()
    assert "enrolled as device" in text and f"swapped model {released[0]} -> {released[-1]}" in text, text[-3000:]
    encoded = edge.post("/v1/encode", json={"texts": ["Toy Story (1995)"]}).json()
    assert encoded["model_version"] == released[0]  # the release id, as the cloud names it


README_BLOCK = production_block(README.read_text(encoding="utf-8"))


def test_the_block_is_found_and_names_each_step() -> None:
    assert README_BLOCK and all("/srv/eibert" in c or "$EIBERT_HOME" in c or "$CLOUD" in c for c in README_BLOCK[:2])
