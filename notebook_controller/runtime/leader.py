"""Leader election on a coordination.k8s.io/v1 Lease, with client-go's rules.

Expiry is judged on our own monotonic clock: a lease is free once its record has not changed for
its leaseDurationSeconds since we first observed that record, whatever the other side's wall clock
says. The leader renews every `retry_period`; if it cannot renew for `renew_deadline` (shorter
than the lease, so it stops before anyone else may start) leadership is lost. Every lease call is
bounded by `request_timeout`, shorter than the renew deadline.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass
from typing import NoReturn

import aiohttp
import structlog

from notebook_controller.runtime import metrics
from notebook_controller.runtime.clock import Clock, MonotonicClock, rfc3339_micro, utcnow
from notebook_controller.runtime.kinds import LEASES
from notebook_controller.runtime.kube import ApiError, KubeClient
from notebook_controller.runtime.objects import JsonDict

log = structlog.get_logger(__name__)

_JITTER = 1.2
_CALL_ERRORS = (ApiError, aiohttp.ClientError, OSError, TimeoutError, ValueError)
RELEASE_ATTEMPTS = 3
"""Reads and writes of the lease on release: a renewal cut short by the shutdown may land after
the read, and the write then conflicts."""


class LeadershipLost(Exception):
    """The lease could not be renewed in time, or someone else holds it now."""


@dataclass(frozen=True)
class LeaderElectionConfig:
    lease_name: str
    lease_namespace: str
    identity: str
    lease_duration: float = 15.0
    renew_deadline: float = 10.0
    retry_period: float = 2.0
    request_timeout: float = 5.0

    def __post_init__(self) -> None:
        if not self.lease_duration > self.renew_deadline:
            raise ValueError("lease_duration must be longer than renew_deadline")
        if not self.renew_deadline > _JITTER * self.retry_period:
            raise ValueError("renew_deadline must be longer than 1.2 * retry_period")
        if not 0 < self.request_timeout < self.renew_deadline:
            raise ValueError("request_timeout must be positive and shorter than renew_deadline")


class LeaderElector:
    def __init__(
        self,
        client: KubeClient,
        config: LeaderElectionConfig,
        *,
        clock: Clock | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self._clock = clock or MonotonicClock()
        self._rng = rng or random.Random()
        self._observed_spec: JsonDict | None = None
        self._observed_at = 0.0
        self.is_leader = False
        self._renewed_at = self._clock.now()
        self._status = metrics.LEADER_ELECTION_STATUS.labels(config.lease_name)
        self._log = log.bind(
            lease=f"{config.lease_namespace}/{config.lease_name}", identity=config.identity
        )

    async def acquire(self) -> None:
        """Return once this process holds the lease."""
        self._log.info("waiting for leadership")
        while True:
            attempt_started = self._clock.now()
            if await self._try_acquire_or_renew():
                break
            await self._clock.sleep(self.config.retry_period * (1 + self._rng.random() * _JITTER))
        self._renewed_at = attempt_started
        self.is_leader = True
        self._status.set(1)
        self._log.info("became leader")

    async def hold(self) -> NoReturn:
        """Renew the lease until that fails for `renew_deadline`; then raise LeadershipLost."""
        last_renewed = self._renewed_at
        while True:
            await self._clock.sleep(self.config.retry_period)
            deadline = last_renewed + self.config.renew_deadline
            while True:
                # Count from the attempt's start: the server may apply the renewal right away.
                attempt_started = self._clock.now()
                # No attempt may run past the deadline: a successor may start soon after it.
                if await self._try_acquire_or_renew(deadline - attempt_started):
                    last_renewed = attempt_started
                    break
                if self._held_by_other():
                    self._lost(f"lease taken by {self._observed_holder()}")
                if self._clock.now() >= deadline:
                    self._lost("could not renew the lease within the renew deadline")
                await self._clock.sleep(min(self.config.retry_period, deadline - self._clock.now()))

    async def release(self) -> None:
        """Give the lease up so a successor needn't wait for it to expire."""
        if not self.is_leader:
            return
        self.is_leader = False
        self._status.set(0)
        for attempt in range(1, RELEASE_ATTEMPTS + 1):
            try:
                if await self._release_once():
                    self._log.info("released the lease")
                return
            except ApiError as error:
                if error.is_conflict and attempt < RELEASE_ATTEMPTS:
                    continue  # a renewal cut short by the shutdown landed after our read
                self._log.warning("could not release the lease", error=repr(error))
                return
            except _CALL_ERRORS as error:
                self._log.warning("could not release the lease", error=repr(error))
                return

    async def _release_once(self) -> bool:
        """Read the lease again and hand it back if it is still ours (False: it isn't)."""
        config = self.config
        async with asyncio.timeout(config.request_timeout):
            lease = await self.client.get(LEASES, config.lease_namespace, config.lease_name)
            if lease is None or (lease.get("spec") or {}).get("holderIdentity") != (
                config.identity
            ):
                return False
            now = rfc3339_micro(utcnow())
            released = {
                **lease["spec"],
                "holderIdentity": None,
                "leaseDurationSeconds": 1,
                "acquireTime": now,
                "renewTime": now,
            }
            await self.client.update(
                LEASES, config.lease_namespace, config.lease_name, {**lease, "spec": released}
            )
        return True

    # --- internals ------------------------------------------------------------------------

    def _lost(self, why: str) -> NoReturn:
        self.is_leader = False
        self._status.set(0)
        self._log.error("lost leadership", reason=why)
        raise LeadershipLost(why)

    def _observed_holder(self) -> str:
        return str((self._observed_spec or {}).get("holderIdentity") or "")

    def _held_by_other(self) -> bool:
        holder = self._observed_holder()
        return bool(holder) and holder != self.config.identity

    def _observed_valid(self) -> bool:
        duration = float((self._observed_spec or {}).get("leaseDurationSeconds") or 0)
        return self._observed_at + duration > self._clock.now()

    def _observe(self, lease: JsonDict) -> None:
        spec = lease.get("spec") or {}
        if spec != self._observed_spec:
            self._observed_spec = spec
            self._observed_at = self._clock.now()

    async def _try_acquire_or_renew(self, budget: float | None = None) -> bool:
        call_timeout = self.config.request_timeout
        if budget is not None:
            call_timeout = max(0.0, min(call_timeout, budget))
        try:
            async with asyncio.timeout(call_timeout):
                return await self._acquire_or_renew_once()
        except _CALL_ERRORS as error:
            if isinstance(error, ApiError) and error.is_conflict:
                self._log.debug("lease changed under us", error=str(error))
            else:
                self._log.warning("lease call failed", error=repr(error))
            return False

    async def _acquire_or_renew_once(self) -> bool:
        config = self.config
        now = rfc3339_micro(utcnow())
        desired = {
            "holderIdentity": config.identity,
            "leaseDurationSeconds": round(config.lease_duration),
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        lease = await self.client.get(LEASES, config.lease_namespace, config.lease_name)
        if lease is None:
            body = {
                "apiVersion": LEASES.api_version,
                "kind": LEASES.kind,
                "metadata": {"name": config.lease_name, "namespace": config.lease_namespace},
                "spec": desired,
            }
            self._observe(await self.client.create(LEASES, config.lease_namespace, body))
            return True
        self._observe(lease)
        spec = lease.get("spec") or {}
        held_by_us = spec.get("holderIdentity") == config.identity
        if self._held_by_other() and self._observed_valid():
            return False
        if held_by_us:
            desired["acquireTime"] = spec.get("acquireTime") or now
            desired["leaseTransitions"] = spec.get("leaseTransitions") or 0
        else:
            desired["leaseTransitions"] = (spec.get("leaseTransitions") or 0) + 1
        updated = await self.client.update(
            LEASES, config.lease_namespace, config.lease_name, {**lease, "spec": desired}
        )
        self._observe(updated)
        return True
