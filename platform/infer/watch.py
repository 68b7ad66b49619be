"""The driver's side of the stall deadline: ask busy actors, judge, kill.

The scheduler tells it which tasks it sent (`sent`) and which finished
(`done`); `check` then asks every busy actor what its tasks are doing (one
small call answered by the actor's control thread, at most every
`poll_interval()`), feeds the answers to the tasks' `Watched` records and
kills the actor of a task that stopped moving (`stalls.py` decides). The
killed actor's refs then fail like any dead actor's, and the scheduler
charges the attempt to the task named in `Member.killed`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

from .activity import ActivityReport
from .messages import Unit
from .pool import Member
from .stalls import StallPolicy, Watched


class StallWatch:
    def __init__(
        self,
        ray: Any,
        policy: StallPolicy,
        progress: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ray, self.policy, self.progress, self.clock = ray, policy, progress, clock
        self.watched: dict[str, Watched] = {}  # task key -> what the driver knows of it

    def sent(self, key: str) -> None:
        self.watched[key] = Watched(key, self.clock())

    def done(self, key: str) -> None:
        self.watched.pop(key, None)

    def poll_interval(self) -> float:
        return self.policy.poll_interval()

    def check(
        self,
        ready: list[Member],
        running: Iterable[tuple[Member, Unit, Any]],
        may_wait: Callable[[str], bool],
    ) -> None:
        """Read the answers that came, kill what stalled, ask the busy actors not asked lately.
        `may_wait(key)`: whether a task reporting that it waits is waiting for work still
        queued or running (then the wait is not a stall)."""
        now = self.clock()
        busy = [m for m in ready if m.busy or m.stitches]
        units: dict[int, list[str]] = {}
        for member, unit, _ in running:
            units.setdefault(id(member), []).append(unit.key)
        asked = [m for m in busy if m.poll is not None]
        if asked:
            answered, _ = self.ray.wait([m.poll for m in asked], num_returns=len(asked), timeout=0)
            answered = set(answered)
            for member in asked:
                if member.poll in answered:
                    self._read_answer(member, now, _task_keys(member, units), may_wait)
        for member in busy:
            for key in _task_keys(member, units):
                watched = self.watched.get(key)
                if watched is None:
                    continue
                deadline = self.policy.deadline(watched.phase)
                reason = watched.stalled(now, deadline, member.asked_at)
                if reason:
                    self._kill(member, key, reason)
                    break
            due = now - member.polled_at >= self.policy.poll_interval()
            if member.killed is None and member.poll is None and due:
                member.poll, member.asked_at = member.actor.activity_report.remote(), now

    def _read_answer(
        self, member: Member, now: float, keys: list[str], may_wait: Callable[[str], bool]
    ) -> None:
        ref, member.poll, member.asked_at, member.polled_at = member.poll, None, None, now
        try:
            reports = [ActivityReport(**r) for r in self.ray.get(ref)]
        except self.ray.exceptions.RayError:
            return  # it died: its unit's ref says so
        by_key = {r.key: r for r in reports}
        for report in reports:
            self.policy.learn(report)
        for key in keys:
            watched = self.watched.get(key)
            if watched is None:
                continue
            if key not in by_key:
                if watched.phase != "queued":  # it ran and ended: its call returns with the
                    del self.watched[key]  # rest of a batch, and it is no stall's culprit
                else:  # not begun: queued behind a unit, or for a stitch thread
                    watched.last_step = now
                continue
            watched.update(by_key[key], now, may_wait(key))

    def _kill(self, member: Member, key: str, reason: str) -> None:
        self.progress(f"{key.removeprefix('stitch:')}: {reason}; replacing its actor")
        member.kill_for(key, reason)
        self.ray.kill(member.actor, no_restart=True)


def _task_keys(member: Member, units: dict[int, list[str]]) -> list[str]:
    """The keys of what runs on `member`: its units (the first runs, the others wait in its
    queue) and its stitches."""
    return [*units.get(id(member), []), *(f"stitch:{v}" for v in member.stitches)]
