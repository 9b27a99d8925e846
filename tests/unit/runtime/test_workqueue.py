"""Every rule of the work-queue (client-go semantics), on an injected clock."""

from __future__ import annotations

import asyncio
import uuid

import pytest
from prometheus_client import REGISTRY

from notebook_controller.runtime import workqueue
from notebook_controller.runtime.clock import FakeClock
from notebook_controller.runtime.ratelimit import ExponentialFailureRateLimiter
from notebook_controller.runtime.workqueue import ShutDown, WorkQueue, backlog


def make_queue(clock: FakeClock | None = None) -> WorkQueue[str]:
    return WorkQueue(
        f"test-{uuid.uuid4().hex[:8]}",
        ExponentialFailureRateLimiter(base_delay=1.0, max_delay=60.0),
        clock=clock or FakeClock(),
    )


async def get_now(queue: WorkQueue[str]) -> str | None:
    """The key `get` hands out without waiting, or None if it would block."""
    try:
        return await asyncio.wait_for(queue.get(), timeout=0.05)
    except TimeoutError:
        return None


def metric(name: str, queue: WorkQueue[str]) -> float | None:
    return REGISTRY.get_sample_value(name, {"name": queue.name})


async def test_keys_come_out_in_order_added() -> None:
    queue = make_queue()
    for key in ("a", "b", "c"):
        queue.add(key)
    assert [await queue.get() for _ in range(3)] == ["a", "b", "c"]


async def test_waiting_key_is_not_added_twice() -> None:
    queue = make_queue()
    queue.add("a")
    queue.add("b")
    queue.add("a")
    assert len(queue) == 2
    assert await queue.get() == "a"
    assert await queue.get() == "b"
    assert await get_now(queue) is None


async def test_key_in_processing_is_not_handed_to_a_second_worker() -> None:
    queue = make_queue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    assert len(queue) == 0
    assert await get_now(queue) is None
    assert queue.processing == {"a"}


async def test_key_re_added_while_processed_runs_once_more_after_done() -> None:
    queue = make_queue()
    queue.add("a")
    assert await queue.get() == "a"
    queue.add("a")
    queue.add("a")
    queue.done("a")
    assert await get_now(queue) == "a"
    queue.done("a")
    assert await get_now(queue) is None


async def test_done_without_re_add_does_not_requeue() -> None:
    queue = make_queue()
    queue.add("a")
    await queue.get()
    queue.done("a")
    assert await get_now(queue) is None


async def test_waiting_worker_wakes_on_add() -> None:
    queue = make_queue()
    worker = asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    assert not worker.done()
    queue.add("a")
    assert await asyncio.wait_for(worker, timeout=1) == "a"


async def test_each_key_goes_to_one_of_several_waiting_workers() -> None:
    queue = make_queue()
    workers = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    queue.add("a")
    await asyncio.sleep(0)
    assert [w.result() for w in workers if w.done()] == ["a"]
    queue.add("b")
    await asyncio.sleep(0)
    assert sorted(w.result() for w in workers if w.done()) == ["a", "b"]
    queue.shut_down()
    await asyncio.gather(*workers, return_exceptions=True)


async def test_a_woken_worker_cancelled_before_it_ran_hands_the_key_on() -> None:
    queue = make_queue()
    first, second = asyncio.ensure_future(queue.get()), asyncio.ensure_future(queue.get())
    await asyncio.sleep(0)
    queue.add("a")  # wakes the first
    first.cancel()
    assert await asyncio.wait_for(second, timeout=1) == "a"
    assert first.cancelled()


async def test_delayed_add_becomes_ready_after_the_delay() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add_after("a", 10)
    assert await get_now(queue) is None
    await clock.advance(9.9)
    assert await get_now(queue) is None
    await clock.advance(0.1)
    assert await get_now(queue) == "a"


async def test_worker_blocked_in_get_wakes_when_the_delay_passes() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    worker = asyncio.ensure_future(queue.get())
    queue.add_after("a", 5)
    await clock.advance(4)
    assert not worker.done()
    await clock.advance(1)
    assert await asyncio.wait_for(worker, timeout=1) == "a"


async def test_delayed_add_keeps_the_earliest_time() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add_after("a", 5)
    queue.add_after("a", 10)  # later: ignored
    queue.add_after("b", 10)
    queue.add_after("b", 3)  # earlier: wins
    assert queue.delayed == 2
    await clock.advance(3)
    assert await get_now(queue) == "b"
    await clock.advance(2)
    assert await get_now(queue) == "a"
    # The superseded entries must not fire again later.
    queue.done("a")
    queue.done("b")
    await clock.advance(10)
    assert await get_now(queue) is None


async def test_add_after_without_delay_adds_at_once() -> None:
    queue = make_queue()
    queue.add_after("a", 0)
    queue.add_after("b", -1)
    assert len(queue) == 2


async def test_rate_limited_add_backs_off_exponentially_per_key() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    for expected_delay in (1.0, 2.0, 4.0):
        queue.add_rate_limited("a")
        await clock.advance(expected_delay - 0.01)
        assert await get_now(queue) is None
        await clock.advance(0.01)
        assert await get_now(queue) == "a"
        queue.done("a")
    assert queue.num_requeues("a") == 3
    assert queue.num_requeues("b") == 0
    assert metric("workqueue_retries_total", queue) == 3


async def test_forget_resets_the_backoff() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add_rate_limited("a")
    queue.add_rate_limited("a")
    queue.forget("a")
    assert queue.num_requeues("a") == 0
    await clock.advance(1)  # the first add (1s) is due, the second (2s) was merged into it
    assert await get_now(queue) == "a"
    queue.done("a")
    queue.add_rate_limited("a")
    await clock.advance(1)
    assert await get_now(queue) == "a"


async def test_shut_down_ignores_adds_drops_delayed_and_hands_out_the_rest() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add("a")
    queue.add_after("b", 1)
    queue.shut_down()
    queue.add("c")
    queue.add_after("d", 0)
    await clock.advance(2)
    assert await queue.get() == "a"
    with pytest.raises(ShutDown):
        await queue.get()


async def test_shut_down_wakes_waiting_workers() -> None:
    queue = make_queue()
    workers = [asyncio.ensure_future(queue.get()) for _ in range(3)]
    await asyncio.sleep(0)
    queue.shut_down()
    results = await asyncio.gather(*workers, return_exceptions=True)
    assert all(isinstance(result, ShutDown) for result in results)


async def test_shut_down_with_drain_waits_for_keys_in_processing() -> None:
    queue = make_queue()
    queue.add("a")
    assert await queue.get() == "a"
    drain = asyncio.ensure_future(queue.shut_down_with_drain())
    await asyncio.sleep(0.01)
    assert not drain.done()
    queue.done("a")
    await asyncio.wait_for(drain, timeout=1)
    assert queue.shutting_down


async def test_metrics_count_adds_depth_and_queue_duration() -> None:
    clock = FakeClock()
    queue = make_queue(clock)
    queue.add("a")
    queue.add("a")  # deduplicated: not an add
    queue.add("b")
    assert metric("workqueue_adds_total", queue) == 2
    assert metric("workqueue_depth", queue) == 2
    await clock.advance(0.5)
    await queue.get()
    assert metric("workqueue_depth", queue) == 1
    assert metric("workqueue_queue_duration_seconds_count", queue) == 1
    assert metric("workqueue_queue_duration_seconds_sum", queue) == pytest.approx(0.5)


async def test_a_backlog_is_a_key_waiting_for_a_worker_longer_than_asked() -> None:
    clock = FakeClock()
    queue, delayed = make_queue(clock), make_queue(clock)
    both = [queue, delayed]
    assert not backlog(queues=both)
    delayed.add_after("later", 5)
    assert not backlog(queues=both)  # waits for its time, not for a worker
    queue.add("a")
    assert backlog(queues=both) and backlog()  # (without `queues`: every queue holding keys)
    await clock.advance(0.3)
    assert queue.longest_wait() == pytest.approx(0.3)
    assert backlog(0.25, both) and not backlog(0.5, both)
    assert await get_now(queue) == "a"
    assert not backlog(queues=both)  # in processing, not waiting
    assert queue not in workqueue._HOLDING  # (nothing left to hand out: no longer looked at)
