"""The devices' edge runtime, shared so that thousands of devices fit in one process.

Each device runs the real edge code (`OnnxEncoder` + the numpy `ranker`), but every device on the same bundle
shares one `SharedModel`: one onnxruntime session and one embedding cache per bundle. Sharing is sound because
a bundle is immutable and identified by its signed offer's content id (release id + manifest, which pins every
file's sha256): a device reuses a loaded model only after its *own* downloaded bytes hashed to what its signed
offer names (see `simulators.updates`); only the first device to fetch a version pays for writing, verifying
and loading it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import shutil
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np

from service.edge import ranker
from service.edge.encoder import OnnxEncoder
from service.edge.learned_ranker import load_ranker
from service.edge.ranker_features import Clock
from service.edge.schemas import MAX_REQUEST_CHARS, MAX_TEXT_CHARS
from service.edge.scoring import rank_scores
from service.edge.update_protocol import VerifiedOffer, write_signed_manifest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Behavior:
    text: str
    ts: float  # simulated unix seconds
    kind: str  # "view" (the persona's history, before the simulation) or "click"
    item_id: str | None = None  # the catalog id, so the learned ranker matches repeats by id


@dataclass(frozen=True, slots=True)
class RankContext:
    """What a device says of its time in a rank request: now (simulated unix seconds) and its UTC offset."""

    now: float
    utc_offset_min: int = 0


class SharedModel:
    """One loaded bundle: the encoder and an embedding cache for every device that runs it."""

    def __init__(self, encoder: OnnxEncoder, *, content_id: str | None = None) -> None:
        self.encoder = encoder
        self.manifest = encoder.manifest
        self.version = encoder.manifest.release_id
        self.content_id = content_id  # None for the factory bundle (never downloaded)
        self.config = ranker.RankerConfig()
        self.learned = load_ranker(encoder.bundle_dir, self.manifest)
        self._cache: dict[str, np.ndarray] = {}

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for text, row in zip(missing, self.encoder.encode(missing), strict=True):
                self._cache[text] = row
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, self.encoder.dim), np.float32)

    def rank(
        self,
        behaviors: Sequence[Behavior],
        candidates: Sequence[tuple[str, str]],
        top_k: int,
        context: RankContext | None = None,
    ) -> list[str]:
        """Candidate ids, best first: exactly what the edge node's /v1/rank computes, without HTTP."""
        b = self.embed([x.text for x in behaviors])
        c = self.embed([text for _, text in candidates])
        clock = Clock(now=context.now, utc_offset_s=60.0 * context.utc_offset_min) if context else Clock()
        scores = rank_scores(
            self.learned,
            self.config,
            b,
            c,
            ts=[x.ts for x in behaviors],
            kinds=[x.kind for x in behaviors],
            behavior_ids=[x.item_id for x in behaviors],
            behavior_texts=[x.text for x in behaviors],
            candidate_ids=[i for i, _ in candidates],
            candidate_texts=[t for _, t in candidates],
            clock=clock,
        )
        return [candidates[i][0] for i in ranker.top_k(scores, top_k)]


class ModelLibrary:
    """Loaded models by offer content id, plus the factory bundle every in-process device starts with."""

    def __init__(self, root: Path, *, threads: int = 1) -> None:
        self.root = Path(root)
        self.threads = threads
        self._by_sha: dict[str, asyncio.Task[SharedModel]] = {}
        self.loads = 0

    def load_factory(self, bundle_dir: Path) -> SharedModel:
        """Blocking: verify every file's sha256, open and warm the bundle."""
        encoder = OnnxEncoder(bundle_dir, threads=self.threads, verify=True)
        encoder.warm_up()
        self.loads += 1
        return SharedModel(encoder)

    async def from_files(self, offer: VerifiedOffer, files: dict[str, bytes]) -> SharedModel:
        """The model of `offer`, from files the caller has already checked against the signed manifest.

        Raises BundleError if they do not load as a verified bundle (OnnxEncoder re-checks every sha256).
        """
        key = offer.payload.content_id()
        task = self._by_sha.get(key)
        if task is None or (task.done() and task.exception() is not None):
            task = asyncio.get_running_loop().create_task(asyncio.to_thread(self._load, offer, files, key))
            self._by_sha[key] = task
        return await asyncio.shield(task)

    def _load(self, offer: VerifiedOffer, files: dict[str, bytes], key: str) -> SharedModel:
        target = self.root / key[:16]
        if target.exists():
            shutil.rmtree(target)
        target.mkdir(parents=True)
        for name, data in files.items():
            (target / name).write_bytes(data)
        write_signed_manifest(target, offer)
        encoder = OnnxEncoder(target, threads=self.threads, verify=True)  # every file's sha256 vs the manifest
        encoder.warm_up()
        self.loads += 1
        log.info("loaded %s (%s) for the fleet", encoder.manifest.release_id, key[:12])
        return SharedModel(encoder, content_id=key)


def fit_texts(texts: Sequence[str]) -> list[str]:
    """Cut texts so that each is within MAX_TEXT_CHARS and all together within MAX_REQUEST_CHARS, the edge's
    published limits (it answers 422 beyond them): every text gets an equal share of the request budget."""
    share = min(MAX_TEXT_CHARS, MAX_REQUEST_CHARS // max(1, len(texts)))
    return [t[:share] for t in texts]


class EdgeRanker:
    """Devices in HTTP mode: POST /v1/rank to edge nodes, round-robin over the given base URLs. Texts are cut
    to the edge's published limits first (`fit_texts`).

    The calls run on their own threads with a blocking client, not on the fleet's event loop: that loop also
    runs thousands of in-process devices' encodes, and a request awaited there was timed with every encode
    that happened to run before its response was read (a p50 of a second against the node's own 50 ms). On a
    thread the timer measures the request and the node, which is what an operator reads the figure for."""

    def __init__(self, client: httpx.Client, urls: Sequence[str], *, threads: int = 4) -> None:
        if not urls:
            raise ValueError("EdgeRanker needs at least one edge URL")
        self.client = client
        self.urls = [u.rstrip("/") for u in urls]
        self._next = 0
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="edge-rank")

    def close(self) -> None:
        self._pool.shutdown(wait=True)

    async def rank(
        self,
        behaviors: Sequence[Behavior],
        candidates: Sequence[tuple[str, str]],
        top_k: int,
        context: RankContext | None = None,
    ) -> tuple[list[str], str, float]:
        """(ids best first, the release id the node served, latency in ms)."""
        url = self.urls[self._next % len(self.urls)]
        self._next += 1
        texts = fit_texts([b.text for b in behaviors] + [t for _, t in candidates])
        b_texts, c_texts = texts[: len(behaviors)], texts[len(behaviors) :]
        body = {
            "behaviors": [
                {"text": t, "ts": b.ts, "kind": b.kind} | ({"item_id": b.item_id} if b.item_id else {})
                for b, t in zip(behaviors, b_texts, strict=True)
            ],
            "candidates": [{"id": i, "text": t, "item_id": i} for (i, _), t in zip(candidates, c_texts, strict=True)],
            "top_k": top_k,
        }
        if context is not None:
            body |= {"now": context.now, "utc_offset_min": context.utc_offset_min}
        context = contextvars.copy_context()  # as asyncio.to_thread does: the failure ledger reads the caller's
        return await asyncio.get_running_loop().run_in_executor(
            self._pool, context.run, self._post, f"{url}/v1/rank", body
        )

    def _post(self, url: str, body: dict) -> tuple[list[str], str, float]:
        t0 = time.perf_counter()
        resp = self.client.post(url, json=body)
        ms = (time.perf_counter() - t0) * 1000.0
        resp.raise_for_status()
        data = resp.json()
        return [item["id"] for item in data["items"]], str(data["model_version"]), ms
