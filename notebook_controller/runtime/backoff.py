"""Jittered exponential backoff for reconnect loops."""

from __future__ import annotations

import random


class Backoff:
    """initial * factor**n, capped at maximum, each delay stretched by up to `jitter` of itself.

    Jitter keeps many clients that lost the same server from reconnecting in lockstep.
    """

    def __init__(
        self,
        initial: float = 0.8,
        maximum: float = 30.0,
        factor: float = 2.0,
        jitter: float = 1.0,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rng = rng or random.Random()
        self._current = initial

    def next(self) -> float:
        base = self._current
        self._current = min(self.maximum, self._current * self.factor)
        return base + self._rng.uniform(0.0, self.jitter * base)

    def reset(self) -> None:
        self._current = self.initial
