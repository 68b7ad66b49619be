"""The pool's sizing rules as pure functions of the cluster's nodes, the work and a clock.

Tested without Ray; `pool.py` carries them out.

- **What fits** is counted node by node: an actor asking for 6 CPUs fits
  once on a node of 8 and never on two nodes of 4, which the cluster's
  totals (8) would hide. Actors started beyond what fits wait unplaced
  until their start deadline and block growth meanwhile.
- **What to ask the autoscaler for** follows the work left: the actors the
  configuration wants, never more than the units queued or running; at the
  tail (nothing queued) only the busy ones, so the nodes of released actors
  can go.
- **Failed starts back off** (doubling, capped) instead of stopping growth
  for good; a change of the cluster's membership resets the count, since
  the new node may be the one that works.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


def fits_on_nodes(nodes: Iterable[Mapping[str, float]], demand: Mapping[str, float]) -> int:
    """How many actors asking for `demand` the nodes hold, each node on its own."""
    if not demand:
        return 0
    return sum(
        min(math.floor(node.get(key, 0.0) / amount + 1e-9) for key, amount in demand.items())
        for node in nodes
    )


def actors_to_request(
    num_actors: int | str, max_actors: int, queued: int, running: int, capacity: int
) -> int:
    """The actors this job asks the autoscaler to make room for (0: ask nothing).

    `num_actors` a number: that many; "auto": `max_actors` (0, unbounded, asks
    for no more than the cluster holds). Never more than the units queued or
    running; at the tail (`queued` 0) only the busy actors.
    """
    wanted = (max_actors or capacity) if num_actors == "auto" else int(num_actors)
    return max(0, min(wanted, queued + running))


@dataclass
class StartBackoff:
    """Consecutive failed starts delay the next start: base, 2 x base, ... up to cap."""

    base_s: float = 5.0
    cap_s: float = 300.0
    failures: int = 0
    last_failure: float = -math.inf

    def failed(self, now: float) -> None:
        self.failures += 1
        self.last_failure = now

    def succeeded(self) -> None:
        self.failures = 0

    def membership_changed(self) -> None:
        """A node joined or left: the next start is tried at once."""
        self.failures = 0

    def may_start(self, now: float) -> bool:
        if self.failures == 0:
            return True
        return now - self.last_failure >= self.delay()

    def delay(self) -> float:
        return min(self.cap_s, self.base_s * 2 ** max(0, self.failures - 1))
