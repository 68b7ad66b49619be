"""The bulk job's actor pool: sized from the cluster, grown with it, never waited on blindly.

The policy lives here and nowhere else (the scheduler only asks for idle
actors and reports deaths):

- **size**: `num_actors: auto` is what the cluster's nodes hold, each node
  counted on its own (`sizing.fits_on_nodes`: fragments of nodes do not add
  up to an actor), bounded by `min_actors` / `max_actors` and by the work
  left; a number is asked for as it is. A split video's stitch runs in a thread of a pool
  actor (on the resources that actor already holds), so the pool may take
  every CPU of the cluster without starving it.
- **start**: actors start without waiting; their placement and then their
  model load are refs the scheduler waits on beside its work, and work goes
  to the first ready actor. An actor not placed after `start_timeout_s` is
  released with one line naming what it asked for and what the cluster has
  (Ray cannot tell "infeasible" from "waiting for a node": both stay
  pending); one placed that does not load its model in that time counts as
  a failed start. Fewer than `min_actors` ready by then, or no actor ready for
  that long while work is left: `PoolStartError` (the job exits with 2).
- **grow**: every `check_s` the pool compares itself with the cluster; when
  capacity appeared (a node joined, the autoscaler added one) it starts
  actors up to the target. What it wants is its share of the cluster's one
  autoscaler request (`demand.py`): renewed while the driver lives, lowered
  as the queue drains (`sizing.actors_to_request`), withdrawn at the end,
  and expired by the coordinator if the driver dies.
- **shrink**: at the tail, an idle actor with no stitch to host is released
  at once, so an autoscaler can take its node back.
- **deaths**: an actor that dies while starting delays the next start
  (`sizing.StartBackoff`: doubling up to 5 minutes, reset when a node
  joins or leaves), so a vanished spot node never stops growth for good;
  with no actor left and `max_attempts` failed starts in a row, the job
  ends (a model that cannot load anywhere does not loop).

Ray Data's actor-pool operator and autoscaler follow the same discipline:
an actor the cluster cannot place stays pending forever in Ray 2.60 (it
looks the same as one waiting for a node), so nothing here waits on one
without a deadline.
"""

from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from .config import ActorConfig
from .demand import DemandShare
from .sizing import StartBackoff, actors_to_request, fits_on_nodes


class PoolStartError(RuntimeError):
    """Not enough actors could start: one line saying why; the job ends with exit status 2."""


class ActorState(Enum):
    """Where an actor is in its life, as the driver knows it."""

    PLACING = "placing"  # created; waiting for the cluster to place it (`__ray_ready__`)
    LOADING = "loading"  # its process runs; loading the model (`load`)
    READY = "ready"  # takes units and stitches
    STOPPING = "stopping"  # killed by the driver (a stall); its refs are failing


@dataclass
class Member:
    """One actor of the pool and what the scheduler has given it.

    Starting has two steps, each with the deadline `start_timeout_s`: placing
    (the cluster finds it resources and starts its process), then loading (the
    model). `ref` is the one being waited on.
    """

    actor: Any
    ref: Any
    load_ref: Any
    started: float  # time.monotonic() at creation, then at placement
    state: ActorState = ActorState.PLACING
    units: int = 0  # calls (a unit, or a batch of short videos) sent and not answered
    stitches: set[str] = field(default_factory=set)  # video ids whose stitch it hosts
    node: str = ""
    info: dict[str, Any] = field(default_factory=dict)
    # the driver's watch on its tasks (stalls.py): the question in flight and when it was
    # asked, when it was last answered, and why the driver killed it (task key, reason)
    poll: Any = None
    asked_at: float | None = None
    polled_at: float = -math.inf
    killed: tuple[str, str] | None = None  # (task key, reason) once STOPPING
    alone: str | None = None  # the key of a unit it runs with nothing beside it
    began_at_death: set[str] | None = None  # keys of the units it had begun when it died

    @property
    def placed(self) -> bool:
        return self.state is not ActorState.PLACING

    @property
    def ready(self) -> bool:
        """It finished starting (READY, or STOPPING after it was)."""
        return self.state in (ActorState.READY, ActorState.STOPPING)

    def kill_for(self, key: str, reason: str) -> None:
        self.state, self.killed = ActorState.STOPPING, (key, reason)

    @property
    def busy(self) -> bool:
        return self.units > 0


class ActorPool:
    def __init__(
        self,
        make_actor: Callable[[], Any],
        actors: ActorConfig,
        progress: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        import ray

        self.ray = ray
        self.make_actor = make_actor
        self.config = actors
        self.progress = progress
        self.clock = clock
        self.members: list[Member] = []
        self.demand = {
            key: value
            for key, value in (("CPU", actors.cpus_per_actor), ("GPU", actors.gpus_per_actor))
            if value > 0
        }
        self.started_at = clock()
        self.peak_ready = 0
        self.first_ready_s: float | None = None  # seconds from the start to the first ready actor
        self._last_check = -math.inf
        self._last_ready_or_work = clock()
        self.backoff = StartBackoff()  # failed starts in a row, and when the next may be
        self._last_start_error = ""
        self._ceiling: int | None = None  # what the cluster placed when actors timed out
        self._membership: frozenset[str] = frozenset()
        self.share = DemandShare(uuid.uuid4().hex, progress, ttl_s=actors.autoscaler_ttl_s)
        self._min_checked = False
        self._min_needed = actors.min_actors

    # -- what the scheduler sees -------------------------------------------------
    def pending_refs(self) -> list[Any]:
        return [m.ref for m in self.members if not m.ready]

    @staticmethod
    def _live(member: Member) -> bool:
        return member.state is ActorState.READY

    def idle(self) -> list[Member]:
        return [m for m in self.members if self._live(m) and not m.busy]

    def with_room(self) -> list[Member]:
        """Ready actors that can take another unit: the idle ones first, then those with a
        free place in their queue (`units_in_flight`), so the next unit waits on the actor,
        not on a round trip to the driver."""
        room = [
            m
            for m in self.members
            if self._live(m) and m.units < self.config.units_in_flight and m.alone is None
        ]
        return sorted(room, key=lambda m: m.units)

    def ready(self) -> list[Member]:
        """Ready to work (one the driver killed for a stall is on its way out)."""
        return [m for m in self.members if m.state is ActorState.READY]

    def starting(self) -> int:
        return sum(1 for m in self.members if not m.ready)

    def host_for_stitch(self) -> Member | None:
        """The ready actor hosting the fewest stitches, if one has room for another."""
        hosts = [m for m in self.ready() if len(m.stitches) < self.config.stitches_per_actor]
        return min(hosts, key=lambda m: (len(m.stitches), m.busy), default=None)

    def by_start_ref(self, ref: Any) -> Member | None:
        return next((m for m in self.members if not m.ready and m.ref == ref), None)

    # -- sizing -----------------------------------------------------------------
    def capacity(self) -> int:
        """Actors the cluster's nodes hold in all (busy or not), each node on its own."""
        nodes = [n.get("Resources", {}) for n in self.ray.nodes() if n.get("Alive")]
        return fits_on_nodes(nodes, self.demand)

    def target(self, work_left: int) -> int:
        """How many actors the pool wants now, before looking at what the cluster holds."""
        actors = self.config
        if actors.num_actors == "auto":
            want = max(self.capacity(), actors.min_actors)
            if actors.max_actors:
                want = min(want, actors.max_actors)
        else:
            want = actors.num_actors
        return max(0, min(want, work_left))

    def start(self, work_left: int) -> None:
        """The first actors: as many as the target, none waited on."""
        wanted = self.target(work_left)
        self._min_needed = min(self.config.min_actors, work_left)
        self._membership = self._nodes()
        self._ask_autoscaler(queued=work_left, running=0)
        for _ in range(wanted):
            self._add()

    # -- events -----------------------------------------------------------------
    def on_ready(self, member: Member) -> str | None:
        """The member's awaited ref resolved: placed or ready (None), or died starting (why)."""
        try:
            info = self.ray.get(member.ref)
        except self.ray.exceptions.RayError as error:
            self._start_failed(member, first_line(error))
            return self._last_start_error
        if not member.placed:  # its process runs: now the model loads, on a deadline of its own
            member.state, member.started, member.ref = (
                ActorState.LOADING,
                self.clock(),
                member.load_ref,
            )
            return None
        member.state, member.info, member.node = ActorState.READY, info, info.get("node", "")
        self.backoff.succeeded()
        self.peak_ready = max(self.peak_ready, len(self.ready()))
        if self.first_ready_s is None:
            self.first_ready_s = self.clock() - self.started_at
        return None

    def _start_failed(self, member: Member, reason: str) -> None:
        self.release(member)
        self.backoff.failed(self.clock())
        self._last_start_error = reason
        self.progress(
            f"vda infer: an actor failed to start ({self.backoff.failures} in a row; the next "
            f"start in {self.backoff.delay():g} s): {reason}"
        )

    def died(self, member: Member) -> None:
        """A ready actor died (its unit or stitch failed with RayActorError)."""
        if member in self.members:
            self.members.remove(member)
            self.ray.kill(member.actor, no_restart=True)

    def release(self, member: Member) -> None:
        if member in self.members:
            self.members.remove(member)
        self.ray.kill(member.actor, no_restart=True)

    # -- the periodic look at the cluster ---------------------------------------
    def maintain(self, work_left: int, queued: int) -> None:
        """Release what timed out or idles at the tail, grow into new capacity, fail if stuck.

        `work_left`: units queued or running; `queued`: units waiting for an actor.
        """
        now = self.clock()
        if queued == 0:  # the tail: nothing waits for an actor
            for member in [m for m in self.members if not m.busy and not m.stitches]:
                self.release(member)
        self._release_timed_out(now)
        self._check_stuck(now, work_left)
        if now - self._last_check < self.config.check_s:
            return
        self._last_check = now
        self._ask_autoscaler(queued=queued, running=work_left - queued)
        membership = self._nodes()
        if membership != self._membership:  # a node joined or left: what timed out may fit now
            self._membership, self._ceiling = membership, None
            self.backoff.membership_changed()
        if queued == 0 or self.starting() or not self.backoff.may_start(now):
            return  # one batch at a time; after failed starts, not before the backoff ends
        want = min(self.target(work_left), self.capacity())
        if self._ceiling is not None:
            want = min(want, self._ceiling)
        for _ in range(want - len(self.members)):
            self._add()

    def shutdown(self) -> None:
        for member in list(self.members):
            self.release(member)
        self.share.close()  # this job's share only; another job's stays

    # -- internals ---------------------------------------------------------------
    def _add(self) -> None:
        actor = self.make_actor()
        placed = actor.__ray_ready__.remote()
        self.members.append(Member(actor, placed, actor.load.remote(), self.clock()))

    def _release_timed_out(self, now: float) -> None:
        timeout = self.config.start_timeout_s
        late = [m for m in self.members if not m.ready and now - m.started >= timeout]
        for member in [m for m in late if m.placed]:  # placed, but the model did not load
            self._start_failed(member, f"the model did not load within {timeout:g} s")
        unplaced = [m for m in late if not m.placed]
        if not unplaced:
            return
        for member in unplaced:
            self.release(member)
        self._ceiling = len(self.members)
        free = self.ray.available_resources()
        self.progress(
            f"vda infer: {len(unplaced)} actor(s) not placed after {timeout:g} s, released; "
            f"each asks for {_resources(self.demand)}; the cluster has "
            f"{_resources(self._cluster_totals())} ({_resources(_pick(free, self.demand))} free); "
            f"going on with {len(self.members)}"
        )

    def _check_stuck(self, now: float, work_left: int) -> None:
        """Placed actors still loading their model count as starting well: their own deadline
        (and the start-failure count) covers them."""
        timeout = self.config.start_timeout_s
        placed = sum(1 for m in self.members if m.placed)
        if placed or work_left == 0:
            self._last_ready_or_work = now
        if not self._min_checked and now - self.started_at >= timeout:
            self._min_checked = True
            if work_left and placed < self._min_needed:
                raise PoolStartError(
                    f"only {placed} of actors.min_actors={self._min_needed} actors started "
                    f"within {timeout:g} s; {self._why()}"
                )
        if work_left and not placed:
            if self.backoff.failures >= self.config.max_attempts and not self.starting():
                raise PoolStartError(
                    f"actors failed to start {self.backoff.failures} times in a row: "
                    f"{self._last_start_error}"
                )
            if now - self._last_ready_or_work >= timeout:
                raise PoolStartError(f"no actor could start within {timeout:g} s; {self._why()}")

    def _why(self) -> str:
        return (
            f"each actor asks for {_resources(self.demand)} and the cluster has "
            f"{_resources(self._cluster_totals())}"
            + (f"; last start error: {self._last_start_error}" if self._last_start_error else "")
        )

    def _cluster_totals(self) -> dict[str, float]:
        totals = self.ray.cluster_resources()
        return {k: float(totals.get(k, 0.0)) for k in ("CPU", "GPU")}

    def _ask_autoscaler(self, queued: int, running: int) -> None:
        """This job's share of the cluster's request: room for the actors the work left
        needs (on a fixed cluster nothing acts on it)."""
        actors, capacity = self.config, self.capacity()
        count = actors_to_request(actors.num_actors, actors.max_actors, queued, running, capacity)
        if count > capacity or self.share.bundles:  # a cluster that holds it all: ask nothing
            self.share.update([dict(self.demand)] * count)

    def _nodes(self) -> frozenset[str]:
        return frozenset(n["NodeID"] for n in self.ray.nodes() if n.get("Alive"))


def _pick(resources: dict[str, float], demand: dict[str, float]) -> dict[str, float]:
    return {k: float(resources.get(k, 0.0)) for k in demand}


def _resources(resources: dict[str, float]) -> str:
    return ", ".join(f"{k} {v:g}" for k, v in resources.items()) or "nothing"


def first_line(error: BaseException) -> str:
    """The line of an error that says what happened (Ray's put a header first)."""
    lines = [line for line in str(error).strip().splitlines() if line.strip()]
    # Ray's actor-death messages put the cause after a header; keep the most telling line
    for line in reversed(lines):
        if "Error" in line and not line.startswith(" "):
            return line.strip()[:300]
    return lines[0][:300] if lines else type(error).__name__
