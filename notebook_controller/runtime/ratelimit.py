"""Rate limiters for the work-queue, with client-go's semantics and defaults.

`when(key)` says how long to wait before the key may be processed again; `forget(key)` ends its
failure streak. The default combines a per-key exponential backoff with an overall token bucket,
so one broken object backs off alone and a mass failure cannot flood the API server.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Protocol

from notebook_controller.runtime.clock import Clock, MonotonicClock


class RateLimiter(Protocol):
    def when(self, key: Hashable) -> float: ...

    def forget(self, key: Hashable) -> None: ...

    def num_requeues(self, key: Hashable) -> int: ...


class ExponentialFailureRateLimiter:
    """base * 2**failures per key, capped at max_delay."""

    def __init__(self, base_delay: float = 0.005, max_delay: float = 1000.0) -> None:
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._failures: dict[Hashable, int] = {}

    def when(self, key: Hashable) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        # Cap the exponent first: 2**failures overflows a float long before anyone cares.
        if failures > 62:
            return self.max_delay
        return float(min(self.base_delay * 2**failures, self.max_delay))

    def forget(self, key: Hashable) -> None:
        self._failures.pop(key, None)

    def num_requeues(self, key: Hashable) -> int:
        return self._failures.get(key, 0)


class TokenBucketRateLimiter:
    """Overall limit: `qps` tokens a second, at most `burst` saved; a key takes one token.

    Like golang's rate.Limiter.Reserve: a key always gets a reservation, possibly in the future.
    """

    def __init__(self, qps: float = 10.0, burst: int = 100, clock: Clock | None = None) -> None:
        self.qps = qps
        self.burst = burst
        self._clock = clock or MonotonicClock()
        self._tokens = float(burst)
        self._last = self._clock.now()

    def when(self, key: Hashable) -> float:
        now = self._clock.now()
        self._tokens = min(float(self.burst), self._tokens + (now - self._last) * self.qps)
        self._last = now
        self._tokens -= 1.0
        return 0.0 if self._tokens >= 0 else -self._tokens / self.qps

    def forget(self, key: Hashable) -> None:
        """The bucket is shared: one key's success doesn't return tokens."""

    def num_requeues(self, key: Hashable) -> int:
        return 0


class MaxOfRateLimiter:
    """The longest delay any of the limiters asks for."""

    def __init__(self, *limiters: RateLimiter) -> None:
        self.limiters = limiters

    def when(self, key: Hashable) -> float:
        return max(limiter.when(key) for limiter in self.limiters)

    def forget(self, key: Hashable) -> None:
        for limiter in self.limiters:
            limiter.forget(key)

    def num_requeues(self, key: Hashable) -> int:
        return max(limiter.num_requeues(key) for limiter in self.limiters)


def default_controller_rate_limiter(clock: Clock | None = None) -> MaxOfRateLimiter:
    """client-go's DefaultControllerRateLimiter: 5ms..1000s per key, 10 qps / 100 burst overall."""
    return MaxOfRateLimiter(
        ExponentialFailureRateLimiter(0.005, 1000.0), TokenBucketRateLimiter(10.0, 100, clock)
    )
