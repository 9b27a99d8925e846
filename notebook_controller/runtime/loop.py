"""The controller's event loop, which takes in I/O in rounds.

A notebook on its way up brings a dozen small watch events (its pod, its StatefulSet, its
status) and the answers to a few requests, spread over seconds. A loop woken for each one pays
more for the wake-up than for the work. On a node shared with the API server, each wake-up is a
context switch onto cold caches. With a `batch_interval`, a loop about to wait for I/O first
lets that interval pass since it last woke. What arrived meanwhile is handled in one round.

- A wait for no time (callbacks are ready, or a timer is due) is never delayed: work in hand
  runs on.
- A timer due before the interval's end fires at its end, with whatever I/O came: up to one
  interval late. The controller's timers are requeues seconds away (a notebook's next probe,
  a held status write's window, a retry) and request timeouts; a thousand notebooks on their
  way up arm several each, and timers firing on time woke the loop between rounds (with these
  in the rounds, 500 notebooks took 11% less CPU, runs side by side).
- A loop that slept longer than the interval (quiet) wakes at the first byte, as before.
- No pause while `hurry()` says work is waiting for a worker: then the loop is bound by how
  fast answers come back, and a pause would only slow the work down. A burst (a thousand
  notebooks created at once) runs as fast as without pauses.
- The price is latency: up to `batch_interval` per network round trip or timer.

At 300 notebooks on the way up (`make bench`, runs interleaved), 50 ms took the controller's
CPU from 3.80 and 3.39 s to 3.07 and 2.97 s, with the StatefulSets there as soon. At 1000,
100 ms rounds with no pause once a key has waited 2.5 rounds for a worker took it from 10.3 s
(50 ms, half a second) to 9.0 s in single runs (runs of the same code differ by up to a fifth
on the shared bench machine), and 100 notebooks' StatefulSets were there as soon as the bare
client's. Without rounds, on uvloop (a faster loop, which has no selector to pace), 500
notebooks took 18% more CPU than with them, side by side.
"""

from __future__ import annotations

import asyncio
import selectors
import time
from collections.abc import Callable

DEFAULT_BATCH_INTERVAL = 0.1
"""Seconds (see `Settings.io_batch_seconds`)."""


class BatchingSelector(selectors.DefaultSelector):
    """The platform's default selector (epoll on Linux), which waits at least `interval` between
    wake-ups unless `hurry()`. `clock` and `sleep` are for tests."""

    def __init__(
        self,
        interval: float,
        *,
        hurry: Callable[[], bool] = lambda: False,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.hurry = hurry
        self._clock = clock
        self._sleep = sleep
        self._woke = -float("inf")

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        if timeout is None or timeout > 0:
            # The loop has nothing to run until I/O or a timer: let I/O and timers gather until
            # the interval since the last wake-up is over.
            global _waits
            _waits += 1
            pause = self._woke + self.interval - self._clock()
            if pause > 0 and not self.hurry():
                if timeout is not None:
                    timeout = max(0.0, timeout - pause)
                self._sleep(pause)
        ready = super().select(timeout)
        self._woke = self._clock()
        return ready


_waits = 0


def waits() -> int:
    """How many times a `BatchingSelector` in this process let its loop wait for I/O or a
    timer: one round of work follows each (`notebook_controller_event_loop_waits_total`)."""
    return _waits


def event_loop_factory(
    batch_interval: float, hurry: Callable[[], bool] = lambda: False
) -> Callable[[], asyncio.AbstractEventLoop]:
    """A factory for `asyncio.Runner`: a loop on a `BatchingSelector`, or the default loop
    when `batch_interval` is 0."""
    if batch_interval <= 0:
        return asyncio.new_event_loop
    return lambda: asyncio.SelectorEventLoop(BatchingSelector(batch_interval, hurry=hurry))
