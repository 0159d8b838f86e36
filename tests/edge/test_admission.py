"""Issue 11 on the edge: a model that arrives by update is admitted (static checks, then a trial load in a
child under memory and time limits) before the node loads it; bundle JSON is size- and depth-bounded."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from tokenizers import Tokenizer

from service.common.errors import BundleError
from service.common.model_admission import AdmissionLimits
from service.edge.app import create_app
from service.edge.encoder import load_tokenizer
from service.edge.slot import LoadedModel, admitting, load_model
from tests.common import model_bombs as bombs
from tests.conftest import TINY_DIM
from tests.edge.cloud_double import CloudDouble
from tests.edge.running_app import first_check_done, serve
from tests.rss import peak_rss_growth

DEEP = '{"model": ' + "[" * 5000 + "]" * 5000 + "}"


class SpyLoader:
    def __init__(self) -> None:
        self.calls: list[Path] = []

    def __call__(self, bundle_dir: Path) -> LoadedModel:
        self.calls.append(bundle_dir)
        return load_model(bundle_dir, warm_up=False)


def test_a_memory_bomb_never_reaches_the_in_process_loader(tiny_bundle: Path, tmp_path: Path) -> None:
    bomb = bombs.bundle_with_model(tiny_bundle, tmp_path / "bomb", lambda p: bombs.memory_bomb(p, TINY_DIM))
    spy = SpyLoader()
    with peak_rss_growth() as growth, pytest.raises(BundleError, match="512 MiB admission memory limit"):
        admitting(spy, AdmissionLimits())(bomb)
    assert spy.calls == []
    assert growth.mib < 200, f"the edge grew by {growth.mib:.0f} MiB"


def test_a_loop_is_refused_before_any_trial(tiny_bundle: Path, tmp_path: Path) -> None:
    bomb = bombs.bundle_with_model(tiny_bundle, tmp_path / "loop", lambda p: bombs.loop_bomb(p, TINY_DIM))
    spy = SpyLoader()
    with pytest.raises(BundleError, match="outside the admission allow-list: Loop"):
        admitting(spy, AdmissionLimits())(bomb)
    assert spy.calls == []


def test_an_honest_bundle_is_admitted_then_loaded(tiny_bundle: Path) -> None:
    spy = SpyLoader()
    model = admitting(spy, AdmissionLimits())(tiny_bundle)
    assert spy.calls == [tiny_bundle] and model.release_id == "tiny-0.0.1"


def test_a_deep_tokenizer_json_is_a_bundle_error_naming_the_limit(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text(DEEP)
    with pytest.raises(BundleError, match="nests deeper than the limit of 32 levels"):
        load_tokenizer(tmp_path / "tokenizer.json", 64)


def test_what_hf_tokenizers_itself_does_with_deep_json() -> None:
    """serde_json inside `tokenizers` stops at its own recursion limit (128) with a bare Exception: safe, but
    not a BundleError, which is why load_tokenizer checks first."""
    with pytest.raises(Exception, match="recursion limit exceeded") as info:
        Tokenizer.from_str(DEEP)
    assert not isinstance(info.value, BundleError)


def test_an_oversized_tokenizer_json_is_refused_unread(tmp_path: Path) -> None:
    with (tmp_path / "tokenizer.json").open("wb") as fh:
        fh.truncate(17 * 1024 * 1024)  # sparse: 17 MiB of zeros, above the 16 MiB cap
    with pytest.raises(BundleError, match="larger than the 16,777,216-byte limit"):
        load_tokenizer(tmp_path / "tokenizer.json", 64)


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["memory", "regex-tokenizer", "batch"])
async def test_an_update_to_a_bomb_is_refused_and_the_old_model_keeps_serving(
    tiny_bundle: Path, tmp_path: Path, make_settings, kind: str
) -> None:
    """Issue 11's memory bomb, and issue 22's regex tokenizer and batch^4 model: the last two were admitted by
    the cloud and the edge; one text then stalled the node 4.3 s, and one 64-text /v1/encode grew it by 529 MB."""
    hostile = bombs.hostile_tokenizer(tiny_bundle / "tokenizer.json")
    dst, v = tmp_path / "bomb", "0.0.9"
    bomb, message = {
        "memory": (lambda: bombs.bundle_with_model(tiny_bundle, dst, lambda p: bombs.memory_bomb(p, TINY_DIM),
                                                   version=v), "admission memory limit"),
        "regex-tokenizer": (lambda: bombs.bundle_with_tokenizer(tiny_bundle, dst, hostile, version=v),
                            "pre_tokenizer 'Split'"),
        "batch": (lambda: bombs.bundle_with_model(tiny_bundle, dst, lambda p: bombs.batch_bomb(p, TINY_DIM, 30522),
                                                  version=v), "admission memory limit"),
    }[kind]  # fmt: skip
    bomb = bomb()
    cloud = CloudDouble()
    cloud.publish(tiny_bundle)
    cloud.publish(bomb)
    cloud.offer("0.0.9")
    settings = make_settings(
        tiny_bundle, cloud="http://cloud.test", cloud_public_key=cloud.public_key_b64, poll_interval_s=3600
    )
    app = create_app(settings, cloud_client=cloud.client())
    with peak_rss_growth() as growth:
        async with serve(app) as client:
            updater = app.state.edge.updater
            await first_check_done(updater)
            assert updater.status.last_error_stage == "load"
            assert message in (updater.status.last_error or ""), updater.status.last_error
            resp = await client.post("/v1/encode", json={"texts": ["still serving"] * 64})
            assert resp.status_code == 200 and resp.json()["model_version"] == "tiny-0.0.1", resp.text
    assert growth.mib < 200, f"the edge grew by {growth.mib:.0f} MiB"


def test_admission_limits_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, tiny_bundle: Path, make_settings
) -> None:
    monkeypatch.setenv("EIBERT_EDGE_ADMISSION", '{"timeout_s": 7, "allowed_ops": ["Add"]}')
    limits = make_settings(tiny_bundle).admission
    assert limits.timeout_s == 7 and limits.allowed_ops == frozenset({"Add"})


@pytest.mark.anyio
async def test_tokenising_never_blocks_the_event_loop(tiny_bundle: Path, tmp_path: Path, make_settings) -> None:
    """Even with a slow tokenizer (here an operator's own startup bundle, which admission does not judge), a
    one-text /v1/encode tokenises in a worker thread: /healthz keeps answering meanwhile."""
    slow = bombs.bundle_with_tokenizer(
        tiny_bundle, tmp_path / "slow", bombs.hostile_tokenizer(tiny_bundle / "tokenizer.json")
    )
    text = ("x" * 18 + " ") * 96  # ~1 s of backtracking, below the regex engine's retry limit
    app = create_app(make_settings(slow))
    async with serve(app) as client:
        encode = asyncio.create_task(client.post("/v1/encode", json={"texts": [text]}))
        await asyncio.sleep(0.05)
        waits = []
        while not encode.done():
            t0 = time.perf_counter()
            assert (await client.get("/healthz")).status_code == 200
            waits.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)
        assert (await encode).status_code == 200
    assert len(waits) >= 3, "the encode finished too fast to tell"
    assert max(waits) < 0.25, f"/healthz waited {max(waits):.2f} s behind the tokenizer"
