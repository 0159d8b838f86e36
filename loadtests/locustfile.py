"""Locust users for eibert: `EdgeUser` drives an edge node, `CloudDeviceUser` plays devices against the cloud.

Pick one per run by class name, because the two targets live on different hosts:

    locust -f loadtests/locustfile.py --host http://127.0.0.1:8080 EdgeUser
    locust -f loadtests/locustfile.py --host http://127.0.0.1:8000 CloudDeviceUser

Tasks are tagged `edge` / `cloud` as well, but `--tags` filters tasks, not classes: with both classes loaded,
the other one is left without tasks and locust fails it, so select by class name (or `--class-picker`).

Without `--host`, each class takes its host from `EIBERT_LOAD_EDGE_URL` / `EIBERT_LOAD_CLOUD_URL`, so the web UI
(docker compose `--profile load`) can run both at once. Texts come from `loadtests.texts.load_sample()`
(MovieLens titles + genres, MIND news titles). Every response is checked for its contract, not just its
status: a 200 with the wrong number of embeddings, or a telemetry batch the cloud did not fully accept, counts
as a failure.

Devices (`CloudDeviceUser`): enrol once in `on_start`, poll their model with `If-None-Match` (a 200 first, 304s
after), and send telemetry as a device does: each report privatised on the "device" by the same encoder the
edge uses (`service.common.ldp.encode_report`, OS randomness), a fresh report id each, and never more than the
daily epsilon budget per device and day. The cloud charges that budget on the day it *receives* a report,
so a device sends one day's batch (labelled with its UTC date) and then enrols again under a new id, with the
operator-issued enrolment token from `EIBERT_LOAD_ENROLMENT_TOKEN` or `EIBERT_LOAD_ENROLMENT_TOKEN_FILE`.
Now and then a device re-sends its last batch, as after a lost response, and the
cloud must answer every report as a duplicate.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import json
import os
import random
import sys
import time
import uuid
from pathlib import Path
from typing import Any

# locust puts only this file's folder on sys.path; the repo root holds the `loadtests` and `service` packages.
_ROOT = str(Path(__file__).resolve().parents[1])
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

import gevent  # noqa: E402
from locust import FastHttpUser, between, events, tag, task  # noqa: E402
from locust.stats import CSV_STATS_INTERVAL_SEC  # noqa: E402

from loadtests.payloads import (  # noqa: E402
    CLOUD_URL_ENV,
    EDGE_URL_ENV,
    ENROLMENT_TOKEN_ENV,
    ENROLMENT_TOKEN_FILE_ENV,
    WAIT_ENV,
    encode_request,
    enrolment_token,
    max_wait_s,
    rank_request,
    telemetry_batch,
)
from loadtests.texts import SAMPLE_ENV, TextSample, load_sample  # noqa: E402
from service.common.ldp import GENRES, LATENCY_BUCKETS  # noqa: E402

# every variable this file reads
ENV_VARS = (SAMPLE_ENV, EDGE_URL_ENV, CLOUD_URL_ENV, WAIT_ENV, ENROLMENT_TOKEN_ENV, ENROLMENT_TOKEN_FILE_ENV)
RESOLVE_PATH = "/v1/devices/{id}/model"


@functools.cache
def texts() -> TextSample:
    """Loaded once per locust process, on first use (not at import: `locust --list` stays instant)."""
    return load_sample()


def _why(resp) -> str:
    """A failure message; `resp.text` is None when the request never got an answer (refused, timed out)."""
    return f"status {resp.status_code}: {(resp.text or str(resp.error))[:200]}"


@events.test_stop.add_listener
def _let_the_csv_catch_up(environment, **_kwargs) -> None:
    """locust rewrites its `--csv` files once a second and not again at exit, so they would miss the last
    second; every user has stopped by now, so one more round makes them hold the final counts."""
    if getattr(environment.parsed_options, "csv_prefix", None):
        gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.5)


class EdgeUser(FastHttpUser):
    """An app calling its edge node: mostly short encodes, sometimes a full re-rank of a candidate list."""

    host = os.environ.get(EDGE_URL_ENV)
    wait_time = between(0.0, max_wait_s())

    def on_start(self) -> None:
        self.sample = texts()
        self.rng = random.Random()

    @tag("edge")
    @task(3)
    def encode(self) -> None:
        req = encode_request(self.sample, self.rng)
        batch = req["texts"]
        with self.client.post("/v1/encode", json=req, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(_why(resp))
                return
            body = resp.json()
            rows = body.get("embeddings") or []
            if len(rows) != len(batch) or any(len(r) != body.get("dim") for r in rows):
                resp.failure(f"{len(rows)} embeddings for {len(batch)} texts")

    @tag("edge")
    @task(1)
    def rank(self) -> None:
        req = rank_request(self.sample, self.rng, time.time())
        with self.client.post("/v1/rank", json=req, catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(_why(resp))
                return
            items = resp.json().get("items") or []
            ids = {c["id"] for c in req["candidates"]}
            scores = [i["score"] for i in items]
            if len(items) != req["top_k"] or not {i["id"] for i in items} <= ids:
                resp.failure(f"{len(items)} ranked items for top_k={req['top_k']}, or ids not among the candidates")
            elif scores != sorted(scores, reverse=True):
                resp.failure("ranked items are not best first")


class CloudDeviceUser(FastHttpUser):
    """One device at a time: enrol, poll the model (ETag), send LDP telemetry within its budget."""

    host = os.environ.get(CLOUD_URL_ENV)
    wait_time = between(0.0, max_wait_s())

    def on_start(self) -> None:
        self.rng = random.Random()
        self.enrol()

    def enrol(self) -> None:
        self.device_id = f"load-{uuid.uuid4().hex}"
        self.token: str | None = None
        self.etag: str | None = None
        self.version: str | None = None
        self.last_batch: dict[str, Any] | None = None
        self.days = [dt.datetime.now(dt.UTC).date().isoformat()]  # one day's budget per device: the cloud's day
        # the device's truth, drawn once: what its reports privatise
        self.genre = self.rng.choice(GENRES)
        self.latency = self.rng.choice(LATENCY_BUCKETS[:3])
        self.click_rate = self.rng.uniform(0.1, 0.5)
        credential = enrolment_token()
        headers = {"Authorization": f"Bearer {credential}"} if credential else {}
        with self.client.post(
            "/v1/devices", json={"device_id": self.device_id}, headers=headers, name="/v1/devices", catch_response=True
        ) as resp:
            if resp.status_code != 201:
                resp.failure("enrol: " + _why(resp))
                return
            self.token = resp.json()["token"]

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    @tag("cloud")
    @task(6)
    def resolve(self) -> None:
        if self.token is None:
            self.enrol()
            return
        headers = self._auth()
        name = RESOLVE_PATH
        if self.etag is not None:
            headers["If-None-Match"] = self.etag
            name = f"{RESOLVE_PATH} [If-None-Match]"
        url = f"/v1/devices/{self.device_id}/model"
        with self.client.get(url, headers=headers, name=name, catch_response=True) as resp:
            etag = resp.headers.get("etag")
            if resp.status_code == 304 and self.etag is not None:
                if etag != self.etag:
                    resp.failure(f"304 with ETag {etag}, sent {self.etag}")
            elif resp.status_code == 200:
                if self.etag is not None and etag == self.etag:
                    resp.failure("200 with the very ETag the device sent in If-None-Match")
                    return
                # first poll, or a new version rolled out; the signed offer's payload names it (load, not trust)
                self.etag, self.version = etag, json.loads(base64.b64decode(resp.json()["payload"]))["version"]
            else:
                resp.failure(_why(resp))

    @tag("cloud")
    @task(2)
    def telemetry(self) -> None:
        if self.version is None:  # a device reports only for the model it runs
            self.resolve()
            return
        if not self.days:  # every accepted day's budget spent: a new device takes over
            self.enrol()
            return
        batch = telemetry_batch(
            version=self.version,
            day=self.days.pop(0),
            click_rate=self.click_rate,
            latency=self.latency,
            genre=self.genre,
            rng=self.rng,
        )
        n = len(batch["reports"])
        with self.client.post("/v1/telemetry", json=batch, headers=self._auth(), catch_response=True) as resp:
            if resp.status_code != 200:
                resp.failure(_why(resp))
                return
            ack = resp.json()
            if ack.get("accepted") != n:
                reasons = {r.get("reason") for r in ack.get("results", []) if r.get("status") != "accepted"}
                resp.failure(f"{ack.get('accepted')} of {n} reports accepted: {reasons}")
                return
        self.last_batch = batch

    @tag("cloud")
    @task(1)
    def telemetry_retry(self) -> None:
        """The same batch again, as after a lost response: counted once, so every report is a duplicate."""
        if self.last_batch is None:
            return
        batch, self.last_batch = self.last_batch, None
        n = len(batch["reports"])
        with self.client.post(
            "/v1/telemetry", json=batch, headers=self._auth(), name="/v1/telemetry [retry]", catch_response=True
        ) as resp:
            if resp.status_code != 200:
                resp.failure(_why(resp))
            elif resp.json().get("duplicate") != n:
                resp.failure(f"retry: {resp.json().get('duplicate')} of {n} reports answered as duplicates")
