"""`bench_cloud(command)`: the cloud's figures (resolve path, telemetry ingest, LDP coverage), measured in one
run, as a BENCHMARKS.md section body.

What runs: a private redis-server (appendonly yes, appendfsync always: the durable production setting) and
the cloud (`python -m service.cloud`, one uvicorn worker), both subprocesses on 127.0.0.1 started by
`service.devstack.processes`; load comes from a small asyncio HTTP/1.1 keep-alive client in this process
(`loadtests/cloud_workloads.py`) that sends pre-built requests (so the client costs little and the server is
what is measured). Every loop is bounded by a request count.

1. Resolve path: GET /v1/devices/{id}/model with a matching If-None-Match (304) against GET /healthz of the
   same app (the no-op baseline), interleaved rounds, median requests/s, plus server CPU per request.
2. Telemetry ingest: POST /v1/telemetry with batches of 3 reports (one device's day: one report per metric at
   its epsilon, the most the cloud accepts from one device per version and day), reports/s.
3. LDP simulation: 10,000 devices with known ground truth, each reporting the three metrics at their default
   epsilons (sum 1.0). Trial 0 goes over HTTP to the cloud (plus one extra top_genre report per device, a second
   report into one group, which the store must refuse); trials 1-19 use the same encoders and estimator in process.
   Share of released 95% CIs covering the truth, and the most epsilon any device spent in a day.
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import numpy as np

from loadtests.cloud_workloads import (
    CONNECTIONS,
    SEED,
    default_epsilons,
    device_reports,
    drive,
    encode_all,
    estimates,
    ground_truth,
    true_freqs,
)
from loadtests.open_loop import HOST, request
from loadtests.stand_in import stand_in_bundle
from service.common.cloud_admin import CloudAdmin
from service.devstack.bench_file import machine_line
from service.devstack.processes import ServerProcess, redis_process
from service.devstack.server_cpu import process_cpu_s
from service.devstack.stack import dev_cloud

ADMIN = "bench-admin-token-" + uuid.uuid4().hex  # given to the cloud: the module's phases call admin routes
RESOLVE_REQUESTS = 4000  # per round
RESOLVE_ROUNDS = 3
RESOLVE_DEVICES = 200
INGEST_BATCHES = 4000
BATCH = 3  # one report per metric: a device has one report per (metric, version, day) group
LDP_DEVICES = 10_000
LDP_TRIALS = 20
DAILY_EPSILON_BUDGET = 1.0  # the cloud's default, set explicitly so the figure names what the server enforced


# ------------------------------------------------------------------------------------------------ phases


def _enrol(port: int, ids: Sequence[str]) -> dict[str, str]:
    with CloudAdmin(f"http://{HOST}:{port}", ADMIN) as admin:
        enrolment = admin.issue_enrolment_token(len(ids), "bench")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {enrolment}"}
    reqs = [request("POST", "/v1/devices", headers, json.dumps({"device_id": d}).encode()) for d in ids]
    res = drive(port, reqs, keep_bodies=True)
    if any(s != 201 for s in res.statuses):
        raise RuntimeError("device enrolment failed")
    tokens = {d: json.loads(b)["token"] for d, b in zip(ids, res.bodies, strict=True)}
    # each device polls once, as a device does: it may report only under the version it was offered
    polls = [request("GET", f"/v1/devices/{d}/model", {"Authorization": f"Bearer {t}"}) for d, t in tokens.items()]
    if any(s != 200 for s in drive(port, polls).statuses):
        raise RuntimeError("device poll failed")
    return tokens


def not_modified_requests(port: int, devices: int = RESOLVE_DEVICES, prefix: str = "resolve") -> list[bytes]:
    """`devices` enrolled devices' model polls with the ETag they were just served: each answers 304."""
    tokens = _enrol(port, [f"{prefix}-{i}" for i in range(devices)])
    reqs_304 = []
    for d, tok in tokens.items():
        auth = {"Authorization": f"Bearer {tok}"}
        etag = httpx.get(f"http://{HOST}:{port}/v1/devices/{d}/model", headers=auth).headers["etag"]
        reqs_304.append(request("GET", f"/v1/devices/{d}/model", {**auth, "If-None-Match": etag}))
    return reqs_304


def _bench_resolve(port: int, server_pid: int) -> dict[str, float]:
    reqs_304 = not_modified_requests(port)
    reqs_304 = [reqs_304[i % len(reqs_304)] for i in range(RESOLVE_REQUESTS)]
    reqs_noop = [request("GET", "/healthz")] * RESOLVE_REQUESTS
    drive(port, reqs_noop[:500])  # warm-up both paths
    drive(port, reqs_304[:500])
    rates: dict[str, list[float]] = {"noop": [], "304": []}
    cpu: dict[str, list[float]] = {"noop": [], "304": []}
    for _ in range(RESOLVE_ROUNDS):  # interleaved, so background load hits both alike
        for name, reqs, want in (("noop", reqs_noop, 200), ("304", reqs_304, 304)):
            c0 = process_cpu_s(server_pid)
            res = drive(port, reqs)
            cpu[name].append((process_cpu_s(server_pid) - c0) / len(reqs) * 1e6)
            if any(s != want for s in res.statuses):
                raise RuntimeError(f"{name} round answered {set(res.statuses)}, expected {want}")
            rates[name].append(res.rate)
    return {
        "noop_rps": statistics.median(rates["noop"]),
        "r304_rps": statistics.median(rates["304"]),
        "ratio": statistics.median(a / b for a, b in zip(rates["304"], rates["noop"], strict=True)),
        "noop_cpu_us": statistics.median(cpu["noop"]),
        "r304_cpu_us": statistics.median(cpu["304"]),
    }


def _bench_ingest(port: int, version: str, day: str) -> dict[str, float]:
    rng = np.random.default_rng(SEED + 1)
    truth = ground_truth(INGEST_BATCHES * BATCH)
    eps = default_epsilons()  # the metrics' own epsilons (the cloud refuses others), 1.0 in all: all counted
    enc = encode_all(truth, rng, eps)
    ids = [f"ingest-{i}" for i in range(INGEST_BATCHES)]
    tokens = _enrol(port, ids)
    reqs = []
    for b, d in enumerate(ids):
        reports = []
        for j in range(BATCH):
            i = b * BATCH + j
            reports.append(device_reports(enc, i, version, day, eps)[j % 3])
        body = json.dumps({"reports": reports}).encode()
        reqs.append(
            request(
                "POST",
                "/v1/telemetry",
                {"Authorization": f"Bearer {tokens[d]}", "Content-Type": "application/json"},
                body,
            )
        )
    drive(port, reqs[:10], keep_bodies=True)  # warm-up: these 10 batches are sent and counted once
    res = drive(port, reqs[10:], connections=8, keep_bodies=True)
    accepted = sum(json.loads(b)["accepted"] for b in res.bodies)
    if any(s != 200 for s in res.statuses) or accepted != (INGEST_BATCHES - 10) * BATCH:
        raise RuntimeError(f"ingest: statuses {set(res.statuses)}, accepted {accepted}")
    return {"reports_per_s": accepted / res.seconds, "batches": len(reqs) - 10, "reports": accepted}


def _bench_ldp(port: int, version: str, day: str, redis_port: int) -> dict[str, float | int]:
    import redis

    truth = ground_truth(LDP_DEVICES)
    f_true = true_freqs(truth)
    eps = default_epsilons()
    covered = total = 0
    per_estimate: dict[tuple[str, str], int] = {}
    http_matches_inprocess = True
    refused_extra = accepted_http = 0
    for trial in range(LDP_TRIALS):
        enc = encode_all(truth, np.random.default_rng(SEED + 100 + trial), eps)
        local = estimates(enc)
        if trial == 0:  # over HTTP, through the ledger, the store and the release gate
            ids = [f"ldp-{i}" for i in range(LDP_DEVICES)]
            tokens = _enrol(port, ids)
            reqs = []
            for i, d in enumerate(ids):
                reports = device_reports(enc, i, version, day, eps)
                extra = device_reports(enc, i, version, day, eps)[2]  # one more top_genre: a repeat in its group
                body = json.dumps({"reports": [*reports, extra]}).encode()
                headers = {"Authorization": f"Bearer {tokens[d]}", "Content-Type": "application/json"}
                reqs.append(request("POST", "/v1/telemetry", headers, body))
            res = drive(port, reqs, connections=8, keep_bodies=True)
            for b in res.bodies:
                ack = json.loads(b)
                accepted_http += ack["accepted"]
                refused_extra += ack["results"][3]["status"] == "refused"
            # a day is released once, after it closes: move the (dev-mode) cloud's clock past the window
            window = httpx.get(f"http://{HOST}:{port}/v1/clock").json()["report_window_days"]
            httpx.post(
                f"http://{HOST}:{port}/v1/clock",
                json={"advance_days": window + 1},
                headers={"Authorization": f"Bearer {ADMIN}"},
            ).raise_for_status()
            released = httpx.get(
                f"http://{HOST}:{port}/v1/fleet/metrics", params={"day": day, "model_version": version}
            ).json()
            for item in released["data"]:
                if item["status"] != "released":
                    http_matches_inprocess = False
                    continue
                mine = {e.category: e for e in local[item["metric"]]}
                for e in item["estimates"]:
                    if abs(e["estimate"] - mine[e["category"]].estimate) > 1e-9:
                        http_matches_inprocess = False
            r = redis.Redis(host=HOST, port=redis_port, decode_responses=True)
            spent = [int(r.get(k)) for k in r.scan_iter(f"eibert:eps:ldp-*|{day}", count=1000)]
            r.close()
        for metric, ests in local.items():
            for k, e in enumerate(ests):
                hit = e.ci_low <= f_true[metric][k] <= e.ci_high
                covered += hit
                total += 1
                per_estimate[(metric, e.category)] = per_estimate.get((metric, e.category), 0) + hit
    budget = DAILY_EPSILON_BUDGET  # what the benchmarked server was started with (`cloud_stack`)
    return {
        "coverage": covered / total,
        "covered": covered,
        "total": total,
        "worst_estimate_coverage": min(per_estimate.values()) / LDP_TRIALS,
        "estimates_below_90": sum(v / LDP_TRIALS < 0.9 for v in per_estimate.values()),
        "n_estimates": len(per_estimate),
        "max_spent": max(spent) / 1e6,
        "devices_in_ledger": len(spent),
        "attempted": sum(eps.values()) + eps["top_genre"],
        "refused_extra": refused_extra,
        "accepted_http": accepted_http,
        "http_matches": http_matches_inprocess,
        "budget": budget,
    }


@contextmanager
def cloud_stack(tmp_path: Path, *extra: str) -> Iterator[tuple[ServerProcess, ServerProcess, list[str]]]:
    """A private durable redis-server and the cloud on it (dev mode, see `_cloud_env`), with a stand-in
    bundle published and rolled out to 100% (and stand-ins of the `extra` versions published, not rolled
    out): yields (cloud, redis, the published versions, rolled-out first)."""
    redis_log, cloud_log = tmp_path / "redis.log", tmp_path / "cloud.log"
    with redis_process(tmp_path / "redis", durable=True, appendfsync="always", log_path=redis_log) as store:
        # dev mode only so the bench can advance the cloud's clock and read the day's release once it closes;
        # every bench device enrols from 127.0.0.1 with one enrolment token: the dev stack lifts the rate limits
        settings = {"REQUIRE_DURABLE_REDIS": "true", "DAILY_EPSILON_BUDGET": str(DAILY_EPSILON_BUDGET)}
        dev = dev_cloud(tmp_path, store_url=store.url, settings=settings, log_path=cloud_log, admin_token=ADMIN)
        with dev.process as cloud:
            with dev.admin() as admin:
                versions = [admin.publish(stand_in_bundle(tmp_path / "bundle"))["version"]]
                for v in extra:
                    versions.append(admin.publish(stand_in_bundle(tmp_path / f"bundle-{v}", version=v))["version"])
                admin.set_rollout(versions[0], 100)
            yield cloud, store, versions


def bench_cloud(command: str) -> str:
    """Run everything once and return the BENCHMARKS.md section body (markdown)."""
    day = dt.datetime.now(dt.UTC).date().isoformat()
    with tempfile.TemporaryDirectory(prefix="eibert-bench-cloud-") as tmp:
        tmp_path = Path(tmp)
        # the LDP trial reports against its own version, so its aggregates hold only its own reports
        with cloud_stack(tmp_path, "1.0.1-ldp") as (cloud, store, (version, ldp_version)):
            resolve = _bench_resolve(cloud.port, cloud.pid)
            ingest = _bench_ingest(cloud.port, version, day)
            ldp = _bench_ldp(cloud.port, ldp_version, day, store.port)
        redis_version = (
            subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
            .stdout.split()[2]
            .removeprefix("v=")
        )
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return _render(command, now, redis_version, resolve, ingest, ldp)


def _met(cond: bool) -> str:
    return "met" if cond else "**missed**"


def _render(command: str, now: str, redis_version: str, resolve: dict, ingest: dict, ldp: dict) -> str:
    rows = [
        (
            f"no-op endpoint `GET /healthz`, requests/s ({CONNECTIONS} connections, {RESOLVE_REQUESTS} per round)",
            f"{resolve['noop_rps']:,.0f}",
            "baseline",
        ),
        (
            "304 resolve path `GET /v1/devices/{id}/model` + `If-None-Match`, requests/s",
            f"{resolve['r304_rps']:,.0f}",
            "",
        ),
        ("304 path as a share of the no-op", f"{resolve['ratio']:.1%}", f">= 50%: {_met(resolve['ratio'] >= 0.5)}"),
        (
            "server CPU per request, no-op / 304",
            f"{resolve['noop_cpu_us']:.0f} µs / {resolve['r304_cpu_us']:.0f} µs",
            "",
        ),
        (
            f"telemetry ingest on Redis, batches of {BATCH}, reports/s ({ingest['batches']} batches, 8 connections)",
            f"{ingest['reports_per_s']:,.0f}",
            f">= 5,000: {_met(ingest['reports_per_s'] >= 5000)}",
        ),
        (
            f"released 95% CIs covering the truth, {LDP_TRIALS} trials x {ldp['n_estimates']} estimates,"
            f" {LDP_DEVICES:,} devices",
            f"{ldp['coverage']:.1%} ({ldp['covered']}/{ldp['total']})",
            f">= 90%: {_met(ldp['coverage'] >= 0.9)}",
        ),
        (
            f"worst single estimate's coverage over the {LDP_TRIALS} trials",
            f"{ldp['worst_estimate_coverage']:.0%} ({ldp['estimates_below_90']} of {ldp['n_estimates']} below 90%)",
            "",
        ),
        (
            f"max epsilon spent by a device in a day (cloud ledger, {ldp['devices_in_ledger']:,} devices;"
            f" each tried {ldp['attempted']:.1f})",
            f"{ldp['max_spent']:.2f}",
            f"<= {ldp['budget']:.2f}: {_met(ldp['max_spent'] <= ldp['budget'])}",
        ),
    ]
    table = "\n".join(f"| {a} | {b} | {c} |" for a, b, c in rows)
    same = "identical to" if ldp["http_matches"] else "**different from**"
    return f"""
## Cloud: resolve path, telemetry ingest, LDP fleet metrics

`{command}` on {now}; {machine_line()}; store: Redis {redis_version} started for the run (appendonly yes,
appendfsync always, so every acknowledged write was fsynced), the cloud app under one uvicorn worker, loopback
HTTP/1.1 keep-alive from an asyncio client in the benchmark process sending pre-built requests. Resolve figures
are medians of {RESOLVE_ROUNDS} interleaved rounds.

| figure | measured | target |
|---|---|---|
{table}

LDP set-up: ground truth drawn once (seed {SEED}): click rate 0.31, five latency buckets, a Zipf(1.1) genre mix
over the 20 MovieLens genres. Each device reports `top_item_clicked` (randomized response, eps 0.4),
`latency_bucket` (OUE, eps 0.3) and `top_genre` (OLH, eps 0.3); trials differ only in the devices' random draws
(seeded). Trial 0 went over HTTP through the real ledger, store and k_min gate: {ldp["accepted_http"]:,} reports
accepted, {ldp["refused_extra"]:,} extra reports (a second one per device and group) refused, released
estimates {same} the in-process estimator on the same reports; trials 1-{LDP_TRIALS - 1} ran the same encoders
and estimator in process. A single
estimate below 90% in 20 trials happens by chance for a 95% interval (P(>= 3 misses of 20) = 7.5%), so the pooled
share is the figure of merit. The model served is an 8-dimensional stand-in bundle: neither path touches model
bytes.
"""
