"""`make load` (`python -m loadtests.run`): locust against a real cloud and edge node, figures into BENCHMARKS.md.

1. Starts the dev stack's cloud (`service.devstack`: `eibert cloud --dev` on SQLite in a temporary directory,
   with a signing key and admin token made for it) on a free port, publishes the shipped bundle and rolls it
   out to 100%.
2. Starts one `eibert edge --bundle <the shipped bundle, model_store.shipped>` on a free port, pinned to that
   cloud's key and polling it (so the edge's own enrolment and update checks run during the test too).
3. Runs `locust --headless` twice for a bounded time, `EdgeUser` against the edge and `CloudDeviceUser`
   against the cloud, with CSV and HTML reports in `loadtests/reports/`.
4. Stops both servers, writes the `load` section of BENCHMARKS.md from the CSVs and exits 1 if any request
   failed (or locust reported an error), else 0.

Durations and user counts: flags, else the environment (`LOAD_SECONDS`, `LOAD_EDGE_USERS`,
`LOAD_CLOUD_USERS`), else 30 s and 8 users each. `make load LOAD_SECONDS=15` passes the variable through.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shlex
import subprocess
import sys
import tempfile
from pathlib import Path

import httpx

from loadtests.payloads import ENROLMENT_TOKEN_ENV, max_wait_s
from loadtests.report import LoadRun, distinct_warnings, read_failures, read_stats, render_section
from loadtests.texts import SAMPLE_ENV, build_sample, fallback_sample, write_sample
from model_store.shipped import SHIPPED_BUNDLE
from service.common.errors import EibertError
from service.devstack.stack import clean_env, dev_cloud, dev_edge

log = logging.getLogger("loadtests.run")

ROOT = Path(__file__).resolve().parents[1]
REPORTS = ROOT / "loadtests" / "reports"
LOCUSTFILE = ROOT / "loadtests" / "locustfile.py"
DEFAULTS = {"LOAD_SECONDS": 30, "LOAD_EDGE_USERS": 8, "LOAD_CLOUD_USERS": 8}
TARGETS = (("edge", "EdgeUser"), ("cloud", "CloudDeviceUser"))
LOAD_ENROLMENT_QUOTA = 100_000  # devices the load run's enrolment token may enrol (the cloud's per-token cap)


def _env_int(name: str) -> int:
    return int(os.environ.get(name, DEFAULTS[name]))


def server_log(name: str) -> str:
    path = REPORTS / f"{name}.log"
    return path.read_text(errors="replace") if path.exists() else ""


def run_locust(target: str, user_class: str, host: str, users: int, seconds: int, env: dict[str, str]) -> LoadRun:
    prefix = REPORTS / target
    for old in REPORTS.glob(f"{target}_*.csv"):
        old.unlink()
    cmd = [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "--host", host]
    cmd += ["-u", str(users), "-r", str(users), "-t", f"{seconds}s", "--stop-timeout", "10"]
    cmd += ["--csv", str(prefix), "--html", str(REPORTS / f"{target}.html"), "--only-summary"]
    cmd += ["--loglevel", "WARNING", user_class]
    log.info("locust: %s", shlex.join(cmd))
    rc = subprocess.run(cmd, cwd=ROOT, env=env, check=False).returncode
    return LoadRun(
        target=target,
        user_class=user_class,
        users=users,
        seconds=seconds,
        stats=read_stats(Path(f"{prefix}_stats.csv")),
        failures=read_failures(Path(f"{prefix}_failures.csv")),
        exit_code=rc,
    )


def text_sample(path: Path) -> str:
    try:
        sample = build_sample()
        where = f"{len(sample.items):,} MovieLens titles+genres and MIND news titles from the data root"
    except (FileNotFoundError, ValueError) as exc:
        log.warning("data root unavailable (%s): using the built-in titles", exc)
        sample = fallback_sample()
        where = f"{len(sample.items)} built-in titles (no data root was found)"
    write_sample(path, sample)
    return where


def command_line(argv: list[str]) -> str:
    if os.environ.get("MAKELEVEL"):
        set_vars = " ".join(f"{k}={os.environ[k]}" for k in DEFAULTS if k in os.environ)
        return f"make load {set_vars}".strip()
    return shlex.join(["python", "-m", "loadtests.run", *argv])


def setup_note(args: argparse.Namespace, texts: str, load_before: float) -> str:
    return (
        f"Set-up: `eibert cloud --dev` (SQLite store, one uvicorn worker) and one `eibert edge --bundle "
        f"{args.bundle.relative_to(ROOT) if args.bundle.is_relative_to(ROOT) else args.bundle}` (polling that "
        "cloud, pinned to its key) as subprocesses on 127.0.0.1; locust (`FastHttpUser`, one process) on the same "
        f"machine, so load generator and servers share its CPUs (1-minute load average {load_before:.2f} before "
        f"the run). Think time uniform in [0, {max_wait_s():.2f}] s per "
        f"user. Texts: {texts}.\n\n"
        "Edge: `/v1/encode` with 1-4 titles (weight 3), `/v1/rank` with 20-50 time-ordered behaviors and 100 "
        "candidates, top 10 (weight 1); the embedding cache is on (default), so repeated titles are cache hits. "
        "Cloud: each user enrols a device (`POST /v1/devices`), polls `GET /v1/devices/{id}/model` (200 first, "
        "then 304 on `If-None-Match`; weight 6), sends telemetry batches of 3 LDP reports of one day, one per "
        "metric at its own epsilon (weight 2, every report must be accepted), and re-sends its last batch (weight 1, "
        "every report must come back as a duplicate); after its day's budget (charged on the cloud's day of "
        "receipt) a user enrols a new device with the run's enrolment token. "
        "Every response body is checked against its contract. Users wait between requests (a closed loop), so "
        "requests/s is the load these users offered, not the servers' capacity (see the edge and cloud sections)."
    )


def measure(args: argparse.Namespace) -> tuple[list[LoadRun], str]:
    """Start the servers, run locust against each target, stop the servers; the runs and a note on the texts."""
    with tempfile.TemporaryDirectory(prefix="eibert-load-") as tmp_s:
        tmp = Path(tmp_s)
        texts_file = tmp / "texts.json"
        texts = text_sample(texts_file)
        # a reproducible set-up: no EIBERT_* setting from the caller's shell leaks into the servers
        base_env = clean_env() | {"PYTHONPATH": str(ROOT)}
        runs: list[LoadRun] = []
        cloud = dev_cloud(tmp, log_path=REPORTS / "cloud.log", base_env=base_env)
        with cloud.process:
            log.info("cloud ready at %s", cloud.url)
            published = cloud.publish(args.bundle, 100)
            log.info("published %s, rollout %s", published["version"], published["rollout"])
            edge_token = cloud.enrolment_token(1, label="load-edge")
            device_token = cloud.enrolment_token(LOAD_ENROLMENT_QUOTA, label="load-devices")
            edge_args = ["--log-level", "warning"]
            edge = dev_edge(args.bundle, cloud, tmp / "edge", token=edge_token, log_path=REPORTS / "edge.log",
                            args=edge_args, base_env=base_env)  # fmt: skip
            with edge:
                log.info("edge ready at %s", edge.url)
                locust_env = {**base_env, SAMPLE_ENV: str(texts_file), ENROLMENT_TOKEN_ENV: device_token}
                hosts = {"edge": edge.url, "cloud": cloud.url}
                users = {"edge": args.edge_users, "cloud": args.cloud_users}
                for target, user_class in TARGETS:
                    runs.append(run_locust(target, user_class, hosts[target], users[target], args.seconds, locust_env))
    return runs, texts


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    p = argparse.ArgumentParser(prog="python -m loadtests.run", description="locust load test -> BENCHMARKS.md")
    p.add_argument("--seconds", type=int, default=_env_int("LOAD_SECONDS"), help="per target (env LOAD_SECONDS)")
    p.add_argument("--edge-users", type=int, default=_env_int("LOAD_EDGE_USERS"))
    p.add_argument("--cloud-users", type=int, default=_env_int("LOAD_CLOUD_USERS"))
    p.add_argument("--bundle", type=Path, default=SHIPPED_BUNDLE)
    p.add_argument("--out", type=Path, default=ROOT / "BENCHMARKS.md", help="markdown file for the load section")
    p.add_argument("--no-write", action="store_true", help="report only; leave BENCHMARKS.md alone")
    args = p.parse_args(argv)
    args.bundle = args.bundle.resolve()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from service.devstack.bench_file import machine_line, write_section

    REPORTS.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()[0]
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    try:
        runs, texts = measure(args)
        warnings = [w for name in ("cloud", "edge") for w in distinct_warnings(server_log(name), name)]
    except (RuntimeError, OSError, EibertError, httpx.HTTPError) as exc:  # a server or locust did not run
        log.error("load test could not run: %s", exc)
        return 1
    body = render_section(
        runs,
        command=command_line(argv),
        when=when,
        machine=machine_line(),
        setup=setup_note(args, texts, load_before),
        server_warnings=warnings,
    )
    if not args.no_write:
        write_section(args.out, "load", body)
        log.info("wrote section 'load' to %s", args.out)
    sys.stdout.write(body)
    failed = [r.target for r in runs if r.failed]
    if failed:
        log.error("load test failed for: %s (see loadtests/reports/)", ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
