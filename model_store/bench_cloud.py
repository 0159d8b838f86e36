"""`bench_cloud(command)`: the issue-5 cloud figures, measured in one run, as a BENCHMARKS.md section body.

What runs: a private redis-server (appendonly yes, appendfsync always: the durable production setting) and
the cloud app under one uvicorn worker in a subprocess, both on 127.0.0.1; load comes from a small asyncio
HTTP/1.1 keep-alive client in this process that sends pre-built requests (so the client costs little and the
server is what is measured). Every loop is bounded by a request count.

1. Resolve path: GET /v1/devices/{id}/model with a matching If-None-Match (304) against GET /healthz of the
   same app (the no-op baseline), interleaved rounds, median requests/s, plus server CPU per request.
2. Telemetry ingest: POST /v1/telemetry with batches of 50 reports (one device per batch, 0.02 epsilon each,
   so every report is within budget and really counted), reports/s.
3. LDP simulation: 10,000 devices with known ground truth, each reporting the three metrics at their default
   epsilons (sum 1.0). Trial 0 goes over HTTP to the cloud (plus one extra report per device that would exceed
   the budget, which the ledger must refuse); trials 1-19 use the same encoders and estimator in process.
   Share of released 95% CIs covering the truth, and the most epsilon any device spent in a day.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from model_store.benchmarks import machine_line

ROOT = Path(__file__).resolve().parents[1]
HOST = "127.0.0.1"
ADMIN = "bench-admin-token-" + uuid.uuid4().hex
CONNECTIONS = 16
RESOLVE_REQUESTS = 4000  # per round
RESOLVE_ROUNDS = 3
RESOLVE_DEVICES = 200
INGEST_BATCHES = 400
BATCH = 50
LDP_DEVICES = 10_000
LDP_TRIALS = 20
SEED = 20240605


# ------------------------------------------------------------------------------------------------ processes


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_http(port: int, path: str = "/healthz", tries: int = 400) -> None:
    import httpx

    for _ in range(tries):
        try:
            if httpx.get(f"http://{HOST}:{port}{path}", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server on port {port} did not become ready")


def _start_redis(data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    import redis

    if shutil.which("redis-server") is None:
        raise RuntimeError("redis-server is not installed; the cloud benchmark needs a real Redis")
    port = _free_port()
    args = ["redis-server", "--port", str(port), "--bind", HOST, "--dir", str(data_dir), "--save", ""]
    args += ["--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no", "--loglevel", "warning"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(host=HOST, port=port)
    for _ in range(200):
        try:
            client.ping()
            client.close()
            return proc, port
        except redis.ConnectionError:
            time.sleep(0.05)
    proc.kill()
    raise RuntimeError("redis-server did not start")


def _start_cloud(store_url: str, data_dir: Path) -> tuple[subprocess.Popen[bytes], int]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from service.common.signing import private_key_to_pem

    port = _free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "EIBERT_ADMIN_TOKEN": ADMIN,
        "EIBERT_CLOUD_STORE_URL": store_url,
        "EIBERT_CLOUD_DATA_DIR": str(data_dir),
        "EIBERT_CLOUD_SIGNING_KEY": private_key_to_pem(Ed25519PrivateKey.generate()).decode(),
        "EIBERT_CLOUD_REQUIRE_DURABLE_REDIS": "true",
        # dev mode only so the bench can advance the cloud's clock and read the day's release once it closes;
        # every bench device enrols from 127.0.0.1 with one enrolment token: no rate limit is being measured
        "EIBERT_CLOUD_DEV_MODE": "1",
        "EIBERT_CLOUD_ENROL_RATE_PER_SOURCE": "1000000000",
        "EIBERT_CLOUD_ENROL_RATE_PER_TOKEN": "1000000000",
    }
    code = (
        "import uvicorn\nfrom service.cloud import Settings, create_app\n"
        f"uvicorn.run(create_app(Settings()), host='{HOST}', port={port}, log_level='warning', access_log=False)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env)
    try:
        _wait_http(port)
    except RuntimeError:
        proc.kill()
        raise
    return proc, port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


# ------------------------------------------------------------------------------------------------ load client


@dataclass
class LoadResult:
    seconds: float
    statuses: list[int]
    bodies: list[bytes]

    @property
    def rate(self) -> float:
        return len(self.statuses) / self.seconds


def _request(method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}"]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if body or method in ("POST", "PUT"):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:\s*(\d+)", re.IGNORECASE)


async def _drive(port: int, requests: Sequence[bytes], connections: int, keep_bodies: bool) -> LoadResult:
    """Send every request once over `connections` keep-alive connections; no pipelining."""
    statuses = [0] * len(requests)
    bodies: list[bytes] = [b""] * len(requests) if keep_bodies else []
    order = iter(range(len(requests)))

    async def worker() -> None:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            for i in order:
                writer.write(requests[i])
                head = await reader.readuntil(b"\r\n\r\n")
                statuses[i] = int(head[9:12])
                m = _CONTENT_LENGTH.search(head)
                body = await reader.readexactly(int(m.group(1))) if m else b""
                if keep_bodies:
                    bodies[i] = body
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(min(connections, len(requests)))))
    return LoadResult(time.perf_counter() - t0, statuses, bodies)


def drive(
    port: int, requests: Sequence[bytes], connections: int = CONNECTIONS, keep_bodies: bool = False
) -> LoadResult:
    return asyncio.run(_drive(port, requests, connections, keep_bodies))


# ------------------------------------------------------------------------------------------------ fixtures


def _stand_in_bundle(out: Path, version: str = "1.0.0") -> Path:
    """A minimal contract-conforming bundle (embedding lookup + sum + L2 norm, dim 8): the cloud's figures do
    not depend on the model, and this keeps the benchmark free of torch and of the pending build pipeline."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from model_store.export import write_bundle
    from model_store.teacher import teacher_dir

    vocab, dim = 30522, 8
    table = np.random.default_rng(0).standard_normal((vocab, dim)).astype(np.float32)
    nodes = [
        helper.make_node("Gather", ["table", "input_ids"], ["tok"]),
        helper.make_node("Cast", ["attention_mask"], ["maskf"], to=TensorProto.FLOAT),
        helper.make_node("Unsqueeze", ["maskf", "axes2"], ["mask3"]),
        helper.make_node("Mul", ["tok", "mask3"], ["masked"]),
        helper.make_node("ReduceSum", ["masked", "axes1"], ["summed"], keepdims=0),
        # L2 norm as the shipped bundles write it (ReduceL2 + Div): only allow-listed operators pass admission
        helper.make_node("ReduceL2", ["summed"], ["norm"], axes=[1], keepdims=1),
        helper.make_node("Div", ["summed", "norm"], ["sentence_embedding"]),
    ]
    graph = helper.make_graph(
        nodes,
        "stand-in",
        [
            helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"]),
            helper.make_tensor_value_info("attention_mask", TensorProto.INT64, ["batch", "seq"]),
        ],
        [helper.make_tensor_value_info("sentence_embedding", TensorProto.FLOAT, ["batch", dim])],
        initializer=[
            numpy_helper.from_array(table, "table"),
            numpy_helper.from_array(np.array([2], dtype=np.int64), "axes2"),
            numpy_helper.from_array(np.array([1], dtype=np.int64), "axes1"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    out.mkdir(parents=True, exist_ok=True)
    onnx.save(model, out / "model.onnx")
    write_bundle(
        out,
        model_onnx=out / "model.onnx",
        tokenizer_json=teacher_dir() / "tokenizer.json",
        name="bench",
        version=version,
        dim=dim,
        max_length=128,
        teacher="none (benchmark stand-in)",
        build={"command": "model_store/bench_cloud.py"},
    )
    return out


# ------------------------------------------------------------------------------------------------ LDP truth


@dataclass
class Truth:
    clicked: np.ndarray  # (n,) bool
    latency: np.ndarray  # (n,) bucket index
    genre: np.ndarray  # (n,) genre index


def _ground_truth(n: int) -> Truth:
    from service.common.ldp import GENRES

    rng = np.random.default_rng(SEED)
    zipf = 1.0 / np.arange(1, len(GENRES) + 1) ** 1.1
    return Truth(
        clicked=rng.random(n) < 0.31,
        latency=rng.choice(5, size=n, p=[0.42, 0.31, 0.15, 0.08, 0.04]),
        genre=rng.permutation(len(GENRES))[rng.choice(len(GENRES), size=n, p=zipf / zipf.sum())],
    )


def default_epsilons() -> dict[str, float]:
    from service.common.ldp import METRICS

    return {k: v.default_epsilon for k, v in METRICS.items()}


def _encode_all(truth: Truth, rng: np.random.Generator, eps: dict[str, float]) -> dict[str, dict[str, np.ndarray]]:
    """Every device's three reports, vectorised through the same encoders `encode_report` uses."""
    from service.common.ldp import olh_perturb, oue_perturb, rr_perturb

    seeds, values = olh_perturb(truth.genre, eps["top_genre"], rng)
    return {
        "top_item_clicked": {"bit": rr_perturb(truth.clicked, eps["top_item_clicked"], rng)},
        "latency_bucket": {"bits": oue_perturb(truth.latency, 5, eps["latency_bucket"], rng)},
        "top_genre": {"seed": seeds, "value": values},
    }


def _estimates(enc: dict[str, dict[str, np.ndarray]]) -> dict[str, list]:
    from service.common.ldp import (
        METRICS,
        CellCounts,
        counts_from_support,
        estimate_metric,
        support_matrix_olh,
        support_matrix_rr,
    )

    m = METRICS
    sup = {
        "top_item_clicked": support_matrix_rr(enc["top_item_clicked"]["bit"]),
        "latency_bucket": enc["latency_bucket"]["bits"],
        "top_genre": support_matrix_olh(
            enc["top_genre"]["seed"], enc["top_genre"]["value"], m["top_genre"].d, m["top_genre"].default_epsilon
        ),
    }
    out = {}
    for name, s in sup.items():
        spec = m[name]
        cell = CellCounts(spec.default_mechanism, spec.default_epsilon, len(s), counts_from_support(s))
        out[name] = estimate_metric(spec, [cell])
    return out


def _true_freqs(truth: Truth) -> dict[str, np.ndarray]:
    n = len(truth.genre)
    return {
        "top_item_clicked": np.bincount(truth.clicked.astype(int), minlength=2) / n,
        "latency_bucket": np.bincount(truth.latency, minlength=5) / n,
        "top_genre": np.bincount(truth.genre, minlength=20) / n,
    }


def _report_json(metric: str, mechanism: str, eps: float, version: str, day: str, payload: dict) -> dict:
    return {
        "report_id": str(uuid.uuid4()),
        "metric": metric,
        "mechanism": mechanism,
        "epsilon": eps,
        "model_version": version,
        "day": day,
        "payload": payload,
    }


def _device_reports(enc: dict, i: int, version: str, day: str, e: dict[str, float]) -> list[dict]:
    bits = "".join("1" if b else "0" for b in enc["latency_bucket"]["bits"][i])
    return [
        _report_json(
            "top_item_clicked",
            "rr",
            e["top_item_clicked"],
            version,
            day,
            {"bit": int(enc["top_item_clicked"]["bit"][i])},
        ),
        _report_json("latency_bucket", "oue", e["latency_bucket"], version, day, {"bits": bits}),
        _report_json(
            "top_genre",
            "olh",
            e["top_genre"],
            version,
            day,
            {"seed": int(enc["top_genre"]["seed"][i]), "value": int(enc["top_genre"]["value"][i])},
        ),
    ]


# ------------------------------------------------------------------------------------------------ phases


def _enrol(port: int, ids: Sequence[str]) -> dict[str, str]:
    import httpx

    resp = httpx.post(
        f"http://{HOST}:{port}/v1/enrolment-tokens",
        json={"max_devices": len(ids), "label": "bench"},
        headers={"Authorization": f"Bearer {ADMIN}"},
    )
    resp.raise_for_status()
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {resp.json()['token']}"}
    reqs = [_request("POST", "/v1/devices", headers, json.dumps({"device_id": d}).encode()) for d in ids]
    res = drive(port, reqs, keep_bodies=True)
    if any(s != 201 for s in res.statuses):
        raise RuntimeError("device enrolment failed")
    return {d: json.loads(b)["token"] for d, b in zip(ids, res.bodies, strict=True)}


def _bench_resolve(port: int, server_pid: int) -> dict[str, float]:
    import httpx

    tokens = _enrol(port, [f"resolve-{i}" for i in range(RESOLVE_DEVICES)])
    reqs_304 = []
    for d, tok in tokens.items():
        auth = {"Authorization": f"Bearer {tok}"}
        etag = httpx.get(f"http://{HOST}:{port}/v1/devices/{d}/model", headers=auth).headers["etag"]
        reqs_304.append(_request("GET", f"/v1/devices/{d}/model", {**auth, "If-None-Match": etag}))
    reqs_304 = [reqs_304[i % len(reqs_304)] for i in range(RESOLVE_REQUESTS)]
    reqs_noop = [_request("GET", "/healthz")] * RESOLVE_REQUESTS
    drive(port, reqs_noop[:500])  # warm-up both paths
    drive(port, reqs_304[:500])
    rates: dict[str, list[float]] = {"noop": [], "304": []}
    cpu: dict[str, list[float]] = {"noop": [], "304": []}
    for _ in range(RESOLVE_ROUNDS):  # interleaved, so background load hits both alike
        for name, reqs, want in (("noop", reqs_noop, 200), ("304", reqs_304, 304)):
            c0 = _cpu_seconds(server_pid)
            res = drive(port, reqs)
            cpu[name].append((_cpu_seconds(server_pid) - c0) / len(reqs) * 1e6)
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
    truth = _ground_truth(INGEST_BATCHES * BATCH)
    eps = dict.fromkeys(default_epsilons(), 0.02)  # 50 x 0.02 = the whole daily budget: all counted
    enc = _encode_all(truth, rng, eps)
    ids = [f"ingest-{i}" for i in range(INGEST_BATCHES)]
    tokens = _enrol(port, ids)
    reqs = []
    for b, d in enumerate(ids):
        reports = []
        for j in range(BATCH):
            i = b * BATCH + j
            reports.append(_device_reports(enc, i, version, day, eps)[j % 3])
        body = json.dumps({"reports": reports}).encode()
        reqs.append(
            _request(
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
    import httpx
    import redis

    from service.cloud.config import Settings

    truth = _ground_truth(LDP_DEVICES)
    f_true = _true_freqs(truth)
    eps = default_epsilons()
    covered = total = 0
    per_estimate: dict[tuple[str, str], int] = {}
    http_matches_inprocess = True
    refused_extra = accepted_http = 0
    for trial in range(LDP_TRIALS):
        enc = _encode_all(truth, np.random.default_rng(SEED + 100 + trial), eps)
        local = _estimates(enc)
        if trial == 0:  # over HTTP, through the ledger, the store and the release gate
            ids = [f"ldp-{i}" for i in range(LDP_DEVICES)]
            tokens = _enrol(port, ids)
            reqs = []
            for i, d in enumerate(ids):
                reports = _device_reports(enc, i, version, day, eps)
                extra = _device_reports(enc, i, version, day, eps)[2]  # one more top_genre: 1.3 epsilon in total
                body = json.dumps({"reports": [*reports, extra]}).encode()
                headers = {"Authorization": f"Bearer {tokens[d]}", "Content-Type": "application/json"}
                reqs.append(_request("POST", "/v1/telemetry", headers, body))
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
    budget = Settings.model_fields["daily_epsilon_budget"].default  # what the benchmarked server runs with
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


def bench_cloud(command: str) -> str:
    """Run everything once and return the BENCHMARKS.md section body (markdown)."""
    day = dt.datetime.now(dt.UTC).date().isoformat()
    with tempfile.TemporaryDirectory(prefix="eibert-bench-cloud-") as tmp:
        tmp_path = Path(tmp)
        (tmp_path / "redis").mkdir()
        redis_proc, redis_port = _start_redis(tmp_path / "redis")
        cloud_proc = None
        try:
            cloud_proc, port = _start_cloud(f"redis://{HOST}:{redis_port}/0", tmp_path / "cloud")
            from service.cloud.client import publish_bundle

            bundle = _stand_in_bundle(tmp_path / "bundle")
            version = publish_bundle(bundle, f"http://{HOST}:{port}", ADMIN)["version"]
            # the LDP trial reports against its own version, so its aggregates hold only its own reports
            ldp_bundle = _stand_in_bundle(tmp_path / "bundle-ldp", version="1.0.1-ldp")
            ldp_version = publish_bundle(ldp_bundle, f"http://{HOST}:{port}", ADMIN)["version"]
            import httpx

            httpx.put(
                f"http://{HOST}:{port}/v1/rollout",
                json={"version": version, "percent": 100},
                headers={"Authorization": f"Bearer {ADMIN}"},
            ).raise_for_status()
            resolve = _bench_resolve(port, cloud_proc.pid)
            ingest = _bench_ingest(port, version, day)
            ldp = _bench_ldp(port, ldp_version, day, redis_port)
            redis_version = (
                subprocess.run(["redis-server", "--version"], capture_output=True, text=True, check=False)
                .stdout.split()[2]
                .removeprefix("v=")
            )
        finally:
            if cloud_proc is not None:
                cloud_proc.terminate()
                cloud_proc.wait(timeout=30)
            redis_proc.terminate()
            redis_proc.wait(timeout=30)
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
        ("304 path as a share of the no-op", f"{resolve['ratio']:.0%}", f">= 50%: {_met(resolve['ratio'] >= 0.5)}"),
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
accepted, {ldp["refused_extra"]:,} over-budget extra reports refused, released estimates {same} the in-process
estimator on the same reports; trials 1-{LDP_TRIALS - 1} ran the same encoders and estimator in process. A single
estimate below 90% in 20 trials happens by chance for a 95% interval (P(>= 3 misses of 20) = 7.5%), so the pooled
share is the figure of merit. The model served is an 8-dimensional stand-in bundle: neither path touches model
bytes.
"""
