"""Hot swaps under load: while models alternate, no request fails and no response mixes two models.

Two genuinely different bundles (32-wide seed 0, 16-wide seed 1): every response's rows are checked against
the encoder its `model_version` names, so a row computed by the other model, a cached row of the other
model, or a batch straddling a swap would all be caught.
"""

from __future__ import annotations

import asyncio
import hashlib
from pathlib import Path

import numpy as np
import pytest

from service.common.device_api import blob_path
from service.edge.app import create_app
from service.edge.encoder import OnnxEncoder
from tests.edge.cloud_double import CloudDouble
from tests.edge.running_app import first_check_done, serve

pytestmark = pytest.mark.anyio

TEXTS = [f"request text number {i} about topic {i % 7}" for i in range(24)]
WORKERS = 12
SWAPS = 6


@pytest.mark.parametrize("inline_budget_ms", [0.0, 50.0], ids=["worker-thread", "inline-when-idle"])
async def test_no_request_fails_or_mixes_models_while_models_swap(
    inline_budget_ms: float, tiny_bundle: Path, other_bundle: Path, make_settings
) -> None:
    expected = {
        "tiny-0.0.1": OnnxEncoder(tiny_bundle).encode(TEXTS),
        "other-0.0.2": OnnxEncoder(other_bundle).encode(TEXTS),
    }
    cloud = CloudDouble()
    cloud.publish(tiny_bundle)
    cloud.publish(other_bundle)
    cloud.offer("0.0.1")  # what it already runs: the background loop's first check changes nothing
    settings = make_settings(
        tiny_bundle, cloud="http://cloud.test", cloud_public_key=cloud.public_key_b64, poll_interval_s=3600,
        max_batch_size=8, max_wait_ms=1.0, cache_size=16,  # small cache: hits and misses both happen
        inline_budget_ms=inline_budget_ms,
    )  # fmt: skip
    app = create_app(settings, cloud_client=cloud.client())
    async with serve(app) as client:
        updater = app.state.edge.updater
        await first_check_done(updater)  # so the swaps below are all ours
        done = asyncio.Event()

        async def worker(w: int) -> list[tuple[list[int], int, dict]]:
            out, i = [], 0
            while not done.is_set() or i < 3:
                idx = [(w * 5 + i * 3 + j) % len(TEXTS) for j in range(1 + (i + w) % 3)]
                r = await client.post("/v1/encode", json={"texts": [TEXTS[k] for k in idx]})
                out.append((idx, r.status_code, r.json()))
                i += 1
                # A request served inline never suspends, and the ASGI transport has no socket to wait on;
                # yield as a network client would, or the swapper below would never get to run.
                await asyncio.sleep(0)
            return out

        tasks = [asyncio.create_task(worker(w)) for w in range(WORKERS)]
        for n in range(SWAPS):
            cloud.offer("0.0.2" if n % 2 == 0 else "0.0.1")
            assert await updater.check_once() == "updated"
            await asyncio.sleep(0.02)  # some requests complete on this model before the next swap
        done.set()
        results = [r for t in await asyncio.gather(*tasks) for r in t]

    assert updater.status.history == ["other-0.0.2", "tiny-0.0.1"] * (SWAPS // 2)
    # Each version downloaded once (0.0.1 too: the startup bundle lives outside the state dir); every later
    # swap re-verifies and loads a kept directory.
    files = [hashlib.sha256(data).hexdigest() for p in cloud.published.values() for data in p.files.values()]
    assert sorted(r[1] for r in cloud.downloads()) == sorted(blob_path(sha) for sha in files)
    versions = set()
    for idx, status, body in results:
        assert status == 200, body
        v = body["model_version"]
        versions.add(v)
        got = np.array(body["embeddings"], dtype=np.float32)
        assert got.shape == (len(idx), expected[v].shape[1]) and body["dim"] == expected[v].shape[1]
        np.testing.assert_allclose(got, expected[v][idx], atol=1e-5)
    assert versions == {"tiny-0.0.1", "other-0.0.2"}, "the load never overlapped both models: the test proved nothing"
    assert len(results) >= WORKERS * 3
