"""The controller's event loop takes in I/O in rounds (runtime.loop), on a fake clock."""

from __future__ import annotations

import asyncio
import selectors
import socket
from collections.abc import Callable, Iterator

import pytest

from notebook_controller.runtime.loop import BatchingSelector, event_loop_factory, waits

INTERVAL = 0.05


class Time:
    """A clock that only `sleep` moves, and what was slept; `during_sleep` runs in each."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []
        self.during_sleep: list[bytes] = []
        self.writer: socket.socket | None = None

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds
        if self.writer is not None:
            for message in self.during_sleep:
                self.writer.send(message)
            self.during_sleep.clear()


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    reader, writer = socket.socketpair()
    yield reader, writer
    reader.close()
    writer.close()


def selector_on(
    time: Time, reader: socket.socket, hurry: Callable[[], bool] = lambda: False
) -> BatchingSelector:
    selector = BatchingSelector(INTERVAL, hurry=hurry, clock=time.clock, sleep=time.sleep)
    selector.register(reader, selectors.EVENT_READ)
    return selector


def test_a_wait_soon_after_a_wake_up_lets_io_gather_until_the_interval_is_over(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, writer = pair
    time = Time()
    selector = selector_on(time, reader)
    writer.send(b"first")
    assert len(selector.select(None)) == 1  # never woken before: no pause
    assert time.slept == []
    reader.recv(100)
    time.now += 0.01  # the round's work
    writer.send(b"second")
    assert len(selector.select(None)) == 1
    assert time.slept == [0.04]  # the rest of the interval since the wake-up
    selector.close()


def test_work_in_hand_is_never_delayed(pair: tuple[socket.socket, socket.socket]) -> None:
    reader, writer = pair
    time = Time()
    selector = selector_on(time, reader)
    writer.send(b"x")
    selector.select(None)
    assert selector.select(0) != []  # callbacks are ready: the loop only looks
    assert time.slept == []
    selector.close()


def test_no_pause_while_work_waits_for_a_worker(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, writer = pair
    time = Time()
    backlog = [True]
    selector = selector_on(time, reader, hurry=lambda: backlog[0])
    selector.select(0)
    writer.send(b"an answer a busy worker waits for")
    assert len(selector.select(None)) == 1
    assert time.slept == []
    reader.recv(100)
    backlog[0] = False
    writer.send(b"news")
    assert len(selector.select(None)) == 1
    assert time.slept == [INTERVAL]
    selector.close()


def test_a_timer_due_within_the_interval_fires_at_its_end_with_what_came_meanwhile(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, writer = pair
    time = Time()
    time.writer = writer
    selector = selector_on(time, reader)
    before = waits()
    selector.select(0)  # a wake-up
    time.during_sleep.append(b"news within the round")
    assert len(selector.select(0.02)) == 1  # the timer's round, 0.03 s late, takes the news
    assert time.slept == [INTERVAL]
    reader.recv(100)
    time.now += 1.0
    assert selector.select(0.01) == []  # a timer after a quiet spell: on time, nothing slept
    assert time.slept == [INTERVAL]
    assert waits() - before == 2  # (select(0) is no wait)
    selector.close()


def test_after_a_quiet_spell_the_first_byte_is_taken_at_once(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    reader, writer = pair
    time = Time()
    selector = selector_on(time, reader)
    selector.select(0)
    time.now += 5  # asleep in the wait, with nothing to do
    writer.send(b"news")
    assert len(selector.select(None)) == 1
    assert time.slept == []
    selector.close()


def test_what_arrives_during_the_pause_is_handled_in_one_round(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    """Three messages that would each wake a plain loop are read by one callback."""
    reader, writer = pair
    reader.setblocking(False)
    time = Time()
    time.writer = writer
    loop = asyncio.SelectorEventLoop(BatchingSelector(INTERVAL, clock=time.clock, sleep=time.sleep))
    reads: list[bytes] = []
    done = loop.create_future()

    def on_readable() -> None:
        reads.append(reader.recv(100))
        if sum(map(len, reads)) == len(b"onetwothree"):
            done.set_result(None)
        else:
            time.during_sleep += [b"two", b"three"]

    loop.add_reader(reader.fileno(), on_readable)
    writer.send(b"one")
    try:
        loop.run_until_complete(asyncio.wait_for(done, 5))
    finally:
        loop.remove_reader(reader.fileno())
        loop.close()
    assert reads == [b"one", b"twothree"]
    assert time.slept and time.slept[0] == pytest.approx(INTERVAL)


def test_the_factory_gives_the_default_loop_without_an_interval() -> None:
    with asyncio.Runner(loop_factory=event_loop_factory(0)) as runner:
        selector = getattr(runner.get_loop(), "_selector", None)
        assert not isinstance(selector, BatchingSelector)
    with asyncio.Runner(loop_factory=event_loop_factory(INTERVAL)) as runner:
        selector = getattr(runner.get_loop(), "_selector", None)
        assert isinstance(selector, BatchingSelector) and selector.interval == INTERVAL
        assert runner.run(asyncio.sleep(0, result="ran")) == "ran"
