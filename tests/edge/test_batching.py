"""The micro-batcher: merges concurrent work, splits by model key, checks its invariant, never hangs."""

from __future__ import annotations

import asyncio
import threading

import pytest

from service.edge.batching import BatcherStopped, MicroBatcher

pytestmark = pytest.mark.anyio


class Recorder:
    """A batch function that records every batch and can be held (gate) so that work queues up behind it."""

    def __init__(self) -> None:
        self.batches: list[tuple[object, list[str]]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, key: object, items: list[str]) -> list[str]:
        self.entered.set()
        self.gate.wait(timeout=30)
        self.batches.append((key, list(items)))
        return [f"{key}:{x}" for x in items]


async def _wait_until(cond, steps: int = 2000) -> None:
    for _ in range(steps):
        if cond():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("condition not reached")


async def test_work_queued_behind_a_running_batch_is_merged_into_one_batch() -> None:
    fn = Recorder()
    sizes: list[int] = []
    b = MicroBatcher(fn, max_batch_size=64, max_wait_s=0.0, on_batch=sizes.append)
    b.start()
    try:
        fn.gate.clear()
        first = asyncio.ensure_future(b.submit("m", ["a"]))
        await _wait_until(fn.entered.is_set)  # batch ["a"] is now running and blocked
        rest = [asyncio.ensure_future(b.submit("m", [f"t{i}", f"u{i}"])) for i in range(10)]
        await asyncio.sleep(0.01)
        fn.gate.set()
        assert await first == ["m:a"]
        results = await asyncio.gather(*rest)
    finally:
        await b.stop()
    assert results == [[f"m:t{i}", f"m:u{i}"] for i in range(10)]  # each caller gets its own rows, in order
    assert [len(items) for _, items in fn.batches] == [1, 20]
    assert sizes == [1, 20]


async def test_max_batch_size_caps_every_batch() -> None:
    fn = Recorder()
    b = MicroBatcher(fn, max_batch_size=3, max_wait_s=0.0)
    b.start()
    try:
        fn.gate.clear()
        first = asyncio.ensure_future(b.submit("m", ["x"]))
        await _wait_until(fn.entered.is_set)
        rest = asyncio.ensure_future(b.submit("m", [str(i) for i in range(10)]))
        await asyncio.sleep(0.01)
        fn.gate.set()
        await first
        assert await rest == [f"m:{i}" for i in range(10)]
    finally:
        await b.stop()
    assert max(len(items) for _, items in fn.batches) == 3


async def test_max_wait_lets_a_batch_fill_before_running() -> None:
    fn = Recorder()
    b = MicroBatcher(fn, max_batch_size=4, max_wait_s=1.0)
    b.start()
    try:
        # Four single submissions in a row: the collector holds the first until the batch is full (4),
        # which happens long before the 1 s wait; so exactly one batch runs.
        results = await asyncio.gather(*(b.submit("m", [str(i)]) for i in range(4)))
    finally:
        await b.stop()
    assert results == [["m:0"], ["m:1"], ["m:2"], ["m:3"]]
    assert [len(items) for _, items in fn.batches] == [4]


async def test_items_of_different_keys_never_share_a_run() -> None:
    fn = Recorder()
    b = MicroBatcher(fn, max_batch_size=64, max_wait_s=0.0)
    b.start()
    try:
        fn.gate.clear()
        first = asyncio.ensure_future(b.submit("old", ["z"]))
        await _wait_until(fn.entered.is_set)
        a = asyncio.ensure_future(b.submit("old", ["1", "2"]))
        c = asyncio.ensure_future(b.submit("new", ["3"]))
        d = asyncio.ensure_future(b.submit("old", ["4"]))
        await asyncio.sleep(0.01)
        fn.gate.set()
        await first
        assert (await a, await c, await d) == (["old:1", "old:2"], ["new:3"], ["old:4"])
    finally:
        await b.stop()
    for key, items in fn.batches:
        assert all(x in {"old": {"z", "1", "2", "4"}, "new": {"3"}}[key] for x in items)


async def test_a_failing_batch_fails_every_caller_and_the_batcher_survives() -> None:
    calls = []

    def fn(key, items):
        calls.append(list(items))
        if "boom" in items:
            raise RuntimeError("inference failed")
        return items

    b = MicroBatcher(fn, max_batch_size=64, max_wait_s=0.05)
    b.start()
    try:
        outcomes = await asyncio.gather(b.submit("m", ["boom"]), b.submit("m", ["fine"]), return_exceptions=True)
        assert all(isinstance(o, RuntimeError) for o in outcomes)  # they shared the failed batch
        assert await b.submit("m", ["later"]) == ["later"]  # the next batch is served
    finally:
        await b.stop()


async def test_a_batch_that_breaks_the_invariant_fails_instead_of_misassigning_rows() -> None:
    b = MicroBatcher(lambda key, items: items[:-1], max_batch_size=8, max_wait_s=0.0)
    b.start()
    try:
        with pytest.raises(RuntimeError, match="returned 1 results"):
            await b.submit("m", ["a", "b"])
    finally:
        await b.stop()


async def test_stop_fails_waiting_callers_and_later_submits() -> None:
    fn = Recorder()
    b = MicroBatcher(fn, max_batch_size=64, max_wait_s=0.0)
    with pytest.raises(BatcherStopped):
        await b.submit("m", ["before start"])
    b.start()
    fn.gate.clear()
    running = asyncio.ensure_future(b.submit("m", ["a"]))
    await _wait_until(fn.entered.is_set)
    queued = asyncio.ensure_future(b.submit("m", ["b"]))
    await asyncio.sleep(0.01)
    stopper = asyncio.ensure_future(b.stop())
    await asyncio.sleep(0.01)
    fn.gate.set()
    await stopper
    for fut in (running, queued):
        with pytest.raises(BatcherStopped):
            await fut
    with pytest.raises(BatcherStopped):
        await b.submit("m", ["after stop"])


async def test_with_two_workers_two_batches_run_at_once() -> None:
    inside, release = threading.Semaphore(0), threading.Event()

    def fn(key, items):
        inside.release()
        release.wait(timeout=30)
        return items

    b = MicroBatcher(fn, max_batch_size=1, max_wait_s=0.0, workers=2)
    b.start()
    try:
        calls = [asyncio.ensure_future(b.submit("m", [str(i)])) for i in range(3)]
        await _wait_until(lambda: inside.acquire(blocking=False))
        await _wait_until(lambda: inside.acquire(blocking=False))  # a second batch entered while one is held
        await asyncio.sleep(0.02)
        assert not inside.acquire(blocking=False)  # but never a third: two workers
        release.set()
        assert [await c for c in calls] == [["0"], ["1"], ["2"]]
    finally:
        release.set()
        await b.stop()


@pytest.mark.parametrize(
    "kwargs",
    [{"max_batch_size": 0}, {"max_batch_size": 2.5}, {"max_wait_s": -1}, {"max_wait_s": 5}, {"workers": 0}],
)
def test_bad_knobs_raise_up_front(kwargs: dict) -> None:
    args = {"max_batch_size": 4, "max_wait_s": 0.0, **kwargs}
    with pytest.raises(ValueError):
        MicroBatcher(lambda k, x: x, **args)


async def test_inline_policy_runs_cheap_batches_on_the_loop_and_the_rest_in_the_worker() -> None:
    threads: dict[str, int] = {}

    def fn(key, items):
        threads[items[0]] = threading.get_ident()
        return items

    b = MicroBatcher(fn, max_batch_size=8, max_wait_s=0.0, inline=lambda key, items: key == "cheap")
    b.start()
    try:
        assert b.idle
        await b.submit("cheap", ["c"])
        await b.submit("costly", ["x"])
        assert b.idle
    finally:
        await b.stop()
    assert threads["c"] == threading.get_ident() and threads["x"] != threading.get_ident()
    assert not b.idle  # stopped


async def test_idle_is_false_while_a_batch_runs_or_items_wait() -> None:
    fn = Recorder()
    b = MicroBatcher(fn, max_batch_size=8, max_wait_s=0.0)
    b.start()
    try:
        fn.gate.clear()
        first = asyncio.ensure_future(b.submit("m", ["a"]))
        await _wait_until(fn.entered.is_set)
        assert not b.idle
        fn.gate.set()
        await first
        await _wait_until(lambda: b.idle)
    finally:
        await b.stop()
