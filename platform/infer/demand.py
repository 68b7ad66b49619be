"""What the vda jobs on one cluster ask its autoscaler for: one request, the sum of live shares.

`ray.autoscaler.sdk.request_resources` keeps one request per cluster, and
it stays in force after the driver that made it died. A job that called it
directly would hold paid nodes forever after a crash, replace another
job's request, and clear that request when it ends. So the request belongs
to a small coordinator instead: a named, detached actor on the head node
(`vda-autoscaler-demand` in namespace `vda`, no CPUs) that keeps each live
job's share with an expiry, sends the sum whenever it changes, and drops a
share that its driver stopped renewing (`ttl_s`, 60 s by default). A job
that ends drops only its own share.

`DemandLedger` is the bookkeeping, pure and tested without Ray;
`DemandShare` is a driver's handle on its share.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

COORDINATOR = "vda-autoscaler-demand"
NAMESPACE = "vda"
Bundle = dict[str, float]


@dataclass
class DemandLedger:
    shares: dict[str, tuple[list[Bundle], float]] = field(default_factory=dict)  # job -> (, expiry)

    def set(self, job: str, bundles: list[Bundle], expires: float) -> None:
        if bundles:
            self.shares[job] = (list(bundles), expires)
        else:
            self.shares.pop(job, None)

    def drop(self, job: str) -> None:
        self.shares.pop(job, None)

    def expire(self, now: float) -> list[str]:
        gone = [job for job, (_, expires) in self.shares.items() if expires <= now]
        for job in gone:
            del self.shares[job]
        return gone

    def total(self) -> list[Bundle]:
        """Every live share's bundles, in job order (a stable request for the autoscaler)."""
        return [dict(b) for job in sorted(self.shares) for b in self.shares[job][0]]


class DemandCoordinator:
    """The Ray actor behind the cluster's one request (see the module's docstring)."""

    def __init__(self, check_s: float = 2.0) -> None:
        self.ledger = DemandLedger()
        self.lock = threading.Lock()
        self.sent: list[Bundle] | None = None
        self.check_s = check_s
        threading.Thread(target=self._expire_loop, daemon=True, name="expire").start()

    def set(self, job: str, bundles: list[Bundle], ttl_s: float) -> int:
        with self.lock:
            self.ledger.set(job, bundles, time.monotonic() + ttl_s)
            return self._send()

    def drop(self, job: str) -> int:
        with self.lock:
            self.ledger.drop(job)
            return self._send()

    def shares(self) -> dict[str, int]:
        """Bundles per live job (for `ray status`-like checks and the tests)."""
        with self.lock:
            return {job: len(bundles) for job, (bundles, _) in self.ledger.shares.items()}

    def _expire_loop(self) -> None:
        while True:
            time.sleep(self.check_s)
            with self.lock:
                if self.ledger.expire(time.monotonic()):
                    self._send()

    def _send(self) -> int:
        total = self.ledger.total()
        if total != self.sent:
            from ray.autoscaler.sdk import request_resources

            request_resources(bundles=total)
            self.sent = total
        return len(total)


class DemandShare:
    """A driver's share of the cluster's request, renewed while the driver lives."""

    def __init__(
        self,
        job: str,
        progress: Callable[[str], None] = print,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.job, self.progress, self.ttl_s, self.clock = job, progress, ttl_s, clock
        self.bundles: list[Bundle] = []
        self.sent_at = -float("inf")
        self._coordinator = None
        self._warned = False

    def update(self, bundles: list[Bundle]) -> None:
        """Send the share when it changed, and renew it every third of its expiry."""
        now = self.clock()
        if bundles == self.bundles and now - self.sent_at < self.ttl_s / 3:
            return
        if not bundles and not self.bundles:
            return  # nothing asked, nothing to withdraw
        try:
            self._actor().set.remote(self.job, bundles, self.ttl_s)
        except Exception as error:  # no autoscaler API here: nothing to ask
            self._warn(error)
            return
        self.bundles, self.sent_at = list(bundles), now

    def close(self) -> None:
        """Withdraw this job's share (and only it)."""
        if self._coordinator is None:
            return
        import ray

        try:
            ray.get(self._coordinator.drop.remote(self.job), timeout=10)
        except Exception as error:
            self._warn(error)  # it expires by itself after ttl_s

    def _actor(self):
        if self._coordinator is None:
            import ray

            coordinator = ray.remote(DemandCoordinator)
            self._coordinator = coordinator.options(
                name=COORDINATOR,
                namespace=NAMESPACE,
                lifetime="detached",
                get_if_exists=True,
                num_cpus=0,
                # on the head: a worker node it sat on could be the one it lets go
                resources={"node:__internal_head__": 0.001},
                max_restarts=-1,
            ).remote()
        return self._coordinator

    def _warn(self, error: Exception) -> None:
        if not self._warned:
            self._warned = True
            self.progress(f"vda infer: could not ask the autoscaler for nodes: {error}")
