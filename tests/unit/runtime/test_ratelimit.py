from __future__ import annotations

import random

import pytest

from notebook_controller.runtime.backoff import Backoff
from notebook_controller.runtime.clock import FakeClock
from notebook_controller.runtime.ratelimit import (
    ExponentialFailureRateLimiter,
    MaxOfRateLimiter,
    TokenBucketRateLimiter,
    default_controller_rate_limiter,
)


def test_exponential_backoff_doubles_per_failure_and_is_capped() -> None:
    limiter = ExponentialFailureRateLimiter(base_delay=0.005, max_delay=1.0)
    delays = [limiter.when("a") for _ in range(10)]
    assert delays[:4] == [0.005, 0.01, 0.02, 0.04]
    assert delays[-1] == 1.0
    assert limiter.num_requeues("a") == 10


def test_exponential_backoff_is_per_key_and_forget_resets_it() -> None:
    limiter = ExponentialFailureRateLimiter(base_delay=1.0, max_delay=100.0)
    limiter.when("a")
    limiter.when("a")
    assert limiter.when("b") == 1.0
    limiter.forget("a")
    assert limiter.when("a") == 1.0


def test_exponential_backoff_survives_huge_failure_counts() -> None:
    limiter = ExponentialFailureRateLimiter(base_delay=0.005, max_delay=1000.0)
    for _ in range(2000):
        delay = limiter.when("a")
    assert delay == 1000.0


def test_token_bucket_allows_a_burst_then_spaces_keys_at_qps() -> None:
    clock = FakeClock()
    limiter = TokenBucketRateLimiter(qps=10, burst=3, clock=clock)
    assert [limiter.when(i) for i in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.when(3) == pytest.approx(0.1)
    assert limiter.when(4) == pytest.approx(0.2)


async def test_token_bucket_refills_over_time() -> None:
    clock = FakeClock()
    limiter = TokenBucketRateLimiter(qps=10, burst=2, clock=clock)
    limiter.when("a")
    limiter.when("b")
    await clock.advance(0.1)
    assert limiter.when("c") == 0.0
    assert limiter.when("d") == pytest.approx(0.1)


def test_max_of_takes_the_longest_delay() -> None:
    clock = FakeClock()
    limiter = MaxOfRateLimiter(
        ExponentialFailureRateLimiter(base_delay=0.001, max_delay=10.0),
        TokenBucketRateLimiter(qps=1, burst=1, clock=clock),
    )
    assert limiter.when("a") == 0.001
    assert limiter.when("a") == pytest.approx(1.0)  # the bucket is empty now
    assert limiter.num_requeues("a") == 2
    limiter.forget("a")
    assert limiter.num_requeues("a") == 0


def test_default_controller_rate_limiter_matches_client_go() -> None:
    limiter = default_controller_rate_limiter(FakeClock())
    assert limiter.when("a") == 0.005
    assert limiter.when("a") == 0.01


def test_backoff_grows_with_jitter_and_caps() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.5, rng=random.Random(7))
    delays = [backoff.next() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base <= delay <= base * 1.5
    backoff.reset()
    assert 1.0 <= backoff.next() <= 1.5
