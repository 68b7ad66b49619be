"""What an actor is doing right now: the evidence behind the driver's stall deadline.

A unit of work (a video, a segment) and each stitch an actor hosts keep an
`Activity`: the phase it is in (open, decode, model, write, commit) and
when it last moved. Every frame the model takes, every phase change and
every storage poll that finds nothing yet is a step. The driver asks for
`ActorActivity.snapshot()` now and then (a method in the actor's control
thread, so it answers while the unit's thread is blocked in a read) and
declares a unit stalled when nothing moved for its deadline (`stalls.py`).

Ray cannot interrupt a thread blocked in a system call, so the remedy for
a stall is the actor's process: the driver kills it and retries the unit
elsewhere. This module only keeps the evidence; it decides nothing.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class ActivityReport:
    """One task's activity as the actor saw it when the driver asked."""

    key: str  # the unit's key, or "stitch:<video id>"
    phase: str
    idle_s: float  # seconds since its last step
    waiting: bool = False  # a stitch waiting for a segment that is not done yet: not stalled
    longest_gap_s: float = 0.0  # the longest pause between steps that ended, on this actor
    model_learnt: bool = False  # a pause in the model (a window) has ended on this actor


class Activity:
    """One task's phase and the time of its last step (thread-safe)."""

    def __init__(self, key: str, owner: ActorActivity) -> None:
        self.key = key
        self.owner = owner
        self.phase = "start"
        self.waiting = False
        self.last = owner.clock()

    def step(self, phase: str | None = None, waiting: bool = False) -> None:
        """One step. Waiting (a stitch polling for its next segment) is not progress: a
        wait keeps the time it began, so the driver sees how long it has lasted."""
        now = self.owner.clock()
        with self.owner.lock:
            if not self.waiting:  # a pause spent waiting for others says nothing of speed
                self.owner.longest_gap_s = max(self.owner.longest_gap_s, now - self.last)
                self.owner.model_learnt |= self.phase == "model"
            if not (waiting and self.waiting):
                self.last = now
            self.waiting = waiting
            if phase is not None:
                self.phase = phase

    def frames(self, frames: Iterable[T], wait: str = "decode", work: str = "model") -> Iterator[T]:
        """Pass frames through, stepping on each: blocked on the next one is `wait`, busy with
        the last one is `work` (so a stall says which side stopped)."""
        iterator = iter(frames)
        while True:
            self.step(wait)
            try:
                item = next(iterator)
            except StopIteration:
                return
            self.step(work)
            yield item

    def report(self) -> ActivityReport:
        return ActivityReport(
            self.key,
            self.phase,
            self.owner.clock() - self.last,
            self.waiting,
            self.owner.longest_gap_s,
            self.owner.model_learnt,
        )


class ActorActivity:
    """Every task running in one actor, by key."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.lock = threading.Lock()
        self.tasks: dict[str, Activity] = {}
        self.longest_gap_s = 0.0
        self.model_learnt = False

    def begin(self, key: str) -> Activity:
        activity = Activity(key, self)
        with self.lock:
            self.tasks[key] = activity
        return activity

    def end(self, key: str) -> None:
        with self.lock:
            self.tasks.pop(key, None)

    def snapshot(self) -> list[dict]:
        with self.lock:
            tasks = list(self.tasks.values())
        return [asdict(task.report()) for task in tasks]
