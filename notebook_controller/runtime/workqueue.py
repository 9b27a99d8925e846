"""A work-queue of keys with client-go's semantics.

- A key waiting in the queue is not added twice (`dirty`).
- A key being processed is never handed to a second worker; re-added meanwhile, it is queued
  again when the first worker calls `done`.
- `add_after` keeps the earliest time when a key is already waiting for a delay.
- `add_rate_limited` asks the rate limiter for the delay (per-key backoff and a global bucket);
  `forget` ends a key's failure streak.
- After `shut_down` adds are ignored, delayed keys are dropped, keys already queued are still
  handed out, then `get` raises `ShutDown`. `shut_down_with_drain` also waits for keys in
  processing to be done.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from collections import deque
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

from notebook_controller.runtime import metrics
from notebook_controller.runtime.clock import Clock, MonotonicClock
from notebook_controller.runtime.ratelimit import RateLimiter, default_controller_rate_limiter

K = TypeVar("K", bound=Hashable)


_HOLDING: set[WorkQueue[Any]] = set()
"""The queues holding keys ready for a worker (the event loop asks before each wait for I/O:
a set of the few that hold some costs less to look through than every queue alive)."""


def backlog(waited: float = 0.0, queues: Iterable[WorkQueue[Any]] | None = None) -> bool:
    """Some queue (of `queues`, else of all) holds a key that has waited for a worker (all of
    its workers busy) for `waited` seconds or longer (runtime.loop: no pause then)."""
    return any(queue.longest_wait() >= waited for queue in (_HOLDING if queues is None else queues))


class ShutDown(Exception):
    """The queue is shut down and empty: a worker should exit."""


class WorkQueue(Generic[K]):
    def __init__(
        self,
        name: str,
        rate_limiter: RateLimiter | None = None,
        *,
        clock: Clock | None = None,
    ) -> None:
        self.name = name
        self._clock = clock or MonotonicClock()
        self._rate_limiter = rate_limiter or default_controller_rate_limiter(self._clock)
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        # Delayed keys: the earliest ready time per key, and a heap that may hold stale entries.
        self._ready_at: dict[K, float] = {}
        self._delayed: list[tuple[float, int, K]] = []
        self._order = itertools.count()
        self._added_at: dict[K, float] = {}
        self._started_at: dict[K, float] = {}
        self._shutting_down = False
        # Workers blocked in `get`, each on its own future: a key pushed wakes one of them (like
        # sync.Cond.Signal), not all of them to find one key. Drainers wait apart.
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._drainers: deque[asyncio.Future[None]] = deque()
        # One timer for all delayed keys, armed for the earliest.
        self._timer: asyncio.Task[None] | None = None
        self._timer_at = 0.0
        metrics.read_at_scrape(metrics.WORKQUEUE_DEPTH.labels(name), self, len)
        self._adds = metrics.WORKQUEUE_ADDS.labels(name)
        self._retries = metrics.WORKQUEUE_RETRIES.labels(name)
        self._queue_duration = metrics.WORKQUEUE_QUEUE_DURATION.labels(name)
        self._work_duration = metrics.WORKQUEUE_WORK_DURATION.labels(name)

    # --- adding ---------------------------------------------------------------------------

    def add(self, key: K) -> None:
        if self._shutting_down or key in self._dirty:
            return
        self._adds.inc()
        self._dirty.add(key)
        self._added_at.setdefault(key, self._clock.now())
        if key in self._processing:
            return
        self._push(key)

    def add_after(self, key: K, delay: float) -> None:
        if self._shutting_down:
            return
        if delay <= 0:
            self.add(key)
            return
        ready_at = self._clock.now() + delay
        if key in self._ready_at and self._ready_at[key] <= ready_at:
            return
        self._ready_at[key] = ready_at
        heapq.heappush(self._delayed, (ready_at, next(self._order), key))
        self._arm_timer()

    def add_rate_limited(self, key: K) -> None:
        self._retries.inc()
        self.add_after(key, self._rate_limiter.when(key))

    def forget(self, key: K) -> None:
        self._rate_limiter.forget(key)

    def num_requeues(self, key: K) -> int:
        return self._rate_limiter.num_requeues(key)

    # --- processing -----------------------------------------------------------------------

    async def get(self) -> K:
        """The next key to process; the caller must call `done(key)` afterwards (in `finally`)."""
        while True:
            self._promote_due()
            if self._queue:
                return self._pop()
            if self._shutting_down:
                raise ShutDown(self.name)
            self._arm_timer()
            await self._wait(self._waiters)

    def done(self, key: K) -> None:
        self._processing.discard(key)
        started = self._started_at.pop(key, None)
        if started is not None:
            self._work_duration.observe(self._clock.now() - started)
        if key in self._dirty:
            self._push(key)
        elif not self._processing:
            _wake_all(self._drainers)

    # --- shutting down --------------------------------------------------------------------

    def shut_down(self) -> None:
        self._shutting_down = True
        self._ready_at.clear()
        self._delayed.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        _wake_all(self._waiters)

    async def shut_down_with_drain(self) -> None:
        """Shut down, then wait until every key handed out has been marked done."""
        self.shut_down()
        while self._processing:
            await self._wait(self._drainers)

    @property
    def shutting_down(self) -> bool:
        return self._shutting_down

    def __len__(self) -> int:
        """Keys ready to be handed out (delayed keys not included)."""
        return len(self._queue)

    def longest_wait(self) -> float:
        """Seconds the first key ready to be handed out has waited since it was added; -1
        when none is ready (delayed keys wait for their time, not for a worker)."""
        if not self._queue:
            return -1.0
        return self._clock.now() - self._added_at.get(self._queue[0], self._clock.now())

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    @property
    def delayed(self) -> int:
        return len(self._ready_at)

    # --- internals ------------------------------------------------------------------------

    def _push(self, key: K) -> None:
        self._queue.append(key)
        _HOLDING.add(self)
        _wake_one(self._waiters)

    def _pop(self) -> K:
        key = self._queue.popleft()
        if not self._queue:
            _HOLDING.discard(self)
        self._processing.add(key)
        self._dirty.discard(key)
        now = self._clock.now()
        self._started_at[key] = now
        added = self._added_at.pop(key, None)
        if added is not None:
            self._queue_duration.observe(now - added)
        return key

    def _promote_due(self) -> None:
        now = self._clock.now()
        while self._delayed and self._delayed[0][0] <= now:
            ready_at, _, key = heapq.heappop(self._delayed)
            if self._ready_at.get(key) == ready_at:
                del self._ready_at[key]
                self.add(key)

    def _arm_timer(self) -> None:
        """Have a timer wake the queue when its earliest delayed key is due (a no-op when one is
        armed for then or sooner; outside an event loop, `get` arms it)."""
        if not self._delayed or self._shutting_down:
            return
        due = self._delayed[0][0]
        if self._timer is not None and not self._timer.done() and self._timer_at <= due:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer_at = due
        self._timer = loop.create_task(self._fire(due))

    async def _fire(self, due: float) -> None:
        await self._clock.sleep(due - self._clock.now())
        self._timer = None
        self._promote_due()  # each key due is pushed, and wakes a worker
        self._arm_timer()

    async def _wait(self, waiters: deque[asyncio.Future[None]]) -> None:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiters.append(future)
        try:
            await future
        except asyncio.CancelledError:
            if future.done() and not future.cancelled():
                _wake_one(waiters)  # woken, then cancelled: hand the wake-up on
            raise


def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return


def _wake_all(waiters: deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.pop()
        if not waiter.done():
            waiter.set_result(None)
