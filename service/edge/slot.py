"""The serving model as one immutable object, and the slot that holds it.

A request reads `slot.current` once and uses that `LoadedModel` for everything it does (cache key, batching
key, encoder, the version it reports), so a swap can never mix two models inside one response. Swapping is
a single reference assignment: requests that started before it finish on the old model, which stays alive
until the last of them drops its reference; requests that start after it see only the new one.
"""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import logging
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from service.common.manifest import Manifest
from service.common.model_admission import AdmissionLimits, admit_bundle
from service.edge.encoder import OnnxEncoder
from service.edge.learned_ranker import LearnedRanker, load_ranker

log = logging.getLogger(__name__)

PROBE_TEXT = "a short sentence of about sixteen tokens, like a typical behaviour or item title"
PROBE_REPEATS = 7


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


@dataclass(frozen=True, eq=False)  # identity equality/hash: two loads of one bundle are two batching keys
class LoadedModel:
    encoder: OnnxEncoder
    loaded_at: str
    source: Path
    short_text_ms: float = float("inf")  # measured cost of encoding one short text (inf = not measured)
    ranker: LearnedRanker | None = None  # the bundle's ranker.json, if it ships one (else the content ranker)

    @property
    def manifest(self) -> Manifest:
        return self.encoder.manifest

    @property
    def release_id(self) -> str:
        """`{name}-{version}`: the one name of a release on the wire, in logs, metrics and folders."""
        return self.encoder.manifest.release_id

    @property
    def dim(self) -> int:
        return self.encoder.dim

    @property
    def key(self) -> str:
        """Cache namespace: the release id alone is not enough (two bundles may reuse one)."""
        return f"{self.release_id}:{self.encoder.model_sha256[:16]}"


def release_freed_heap() -> None:
    """Give the heap freed after a load back to the OS (glibc `malloc_trim`; a no-op elsewhere).

    Parsing the graph, optimising it and the warm-up pass allocate several times the model's size for a
    moment; glibc keeps that freed memory mapped, so without a trim the process stays as large as the peak.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc (macOS, musl): nothing to do
        return
    with contextlib.suppress(AttributeError):
        libc.malloc_trim(0)


def load_model(bundle_dir: Path, *, threads: int = 1, warm_up: bool = True) -> LoadedModel:
    """Verify (every file's sha256), open and warm a bundle; raises BundleError if any of it fails.

    Blocking (hashing, session creation, a forward pass): call it from a worker thread in the server.
    """
    encoder = OnnxEncoder(bundle_dir, threads=threads, verify=True)
    learned = load_ranker(Path(bundle_dir), encoder.manifest)
    cost = float("inf")
    if warm_up:
        encoder.warm_up()
        cost = measure_short_text_ms(encoder)
    release_freed_heap()
    log.info("loaded %s from %s; one short text takes %.3f ms", encoder.name, bundle_dir, cost)
    return LoadedModel(
        encoder=encoder, loaded_at=utc_now(), source=Path(bundle_dir), short_text_ms=cost, ranker=learned
    )


def measure_short_text_ms(encoder: OnnxEncoder, repeats: int = PROBE_REPEATS) -> float:
    """Median time to encode one short text: lets the server decide whether a request is cheap enough to run
    on the event loop rather than pay a thread hand-off (see `inline_budget_ms` in the settings)."""
    samples = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        encoder.encode([PROBE_TEXT])
        samples.append((time.perf_counter() - t0) * 1000.0)
    return statistics.median(samples)


def admitting(loader: Callable[[Path], LoadedModel], limits: AdmissionLimits) -> Callable[[Path], LoadedModel]:
    """`loader`, preceded by `admit_bundle`: a bundle that arrived by update is checked statically and
    trial-loaded in a child process under `limits` before this process loads it (and can be hurt by it)."""

    def load_admitted(bundle_dir: Path) -> LoadedModel:
        admit_bundle(bundle_dir, limits)
        return loader(bundle_dir)

    return load_admitted


class ModelSlot:
    """Holds the serving model; `swap` is the only way to change it.

    Of the model it replaced, only the release id and bundle directory are kept (what a rollback reloads), not its
    session: memory stays bounded to one live session plus whatever in-flight requests still hold.
    """

    def __init__(self, model: LoadedModel | None = None) -> None:
        self._current = model
        self.previous_version: str | None = None
        self.previous_source: Path | None = None

    @property
    def current(self) -> LoadedModel | None:
        return self._current

    def swap(self, model: LoadedModel) -> LoadedModel | None:
        """Make `model` the serving one (one reference assignment); returns the one it replaced."""
        old = self._current
        self._current = model
        if old is not None:
            self.previous_version, self.previous_source = old.release_id, old.source
        return old
