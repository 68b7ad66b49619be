"""The driver's stall watch (`watch.py`) over a real actor: what it blames when an actor
running a batch of short videos stops moving."""

from __future__ import annotations

import time
from dataclasses import asdict

import pytest

from vda.platform.infer.activity import ActivityReport
from vda.platform.infer.messages import Unit
from vda.platform.infer.pool import ActorState, Member
from vda.platform.infer.stalls import StallPolicy
from vda.platform.infer.watch import StallWatch

pytestmark = pytest.mark.integration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_stalled_batch_is_blamed_on_the_video_it_runs_not_on_one_it_finished(ray_cluster):
    ray = ray_cluster

    @ray.remote(num_cpus=0)
    class Frozen:  # what the watch kills; its first answers are handed to the watch below
        def ready(self) -> bool:
            return True

        def activity_report(self) -> list:
            time.sleep(600)  # then it stops answering (a process frozen in native code)
            return []

    actor = Frozen.remote()
    assert ray.get(actor.ready.remote())
    clock, lines = Clock(), []
    watch = StallWatch(ray, StallPolicy(timeout_s=10), lines.append, clock)
    member = Member(actor, None, None, clock.now, ActorState.READY, units=1)
    first, second = Unit("in/a.mp4", "a"), Unit("in/b.mp4", "b")  # one call: a, then b
    running = [(member, first, None), (member, second, None)]
    for unit in (first, second):
        watch.sent(unit.key)

    def answer(*reports: ActivityReport) -> None:
        """The actor's answer to the watch's question, as its control thread gives it."""
        member.poll, member.asked_at = ray.put([asdict(r) for r in reports]), clock.now
        ray.wait([member.poll])
        watch.check([member], running, lambda key: False)

    clock.now += 2
    answer(ActivityReport(first.key, "decode", idle_s=0.5))  # a runs, b waits its turn
    assert watch.watched[first.key].phase == "decode"
    assert watch.watched[second.key].phase == "queued"
    clock.now += 2
    answer(ActivityReport(second.key, "decode", idle_s=0.0))  # a ended; its row comes with b's
    assert first.key not in watch.watched and watch.watched[second.key].phase == "decode"
    clock.now += 9.9
    watch.check([member], running, lambda key: False)
    assert member.killed is None  # 9.9 s without a step: within the 10 s deadline
    assert member.poll is not None  # asked again; no answer comes
    clock.now += 0.2
    watch.check([member], running, lambda key: False)
    assert member.killed is not None
    key, reason = member.killed
    assert key == second.key and reason == "stalled for 10 s in decode"
    assert lines == [f"{second.key}: stalled for 10 s in decode; replacing its actor"]
    with pytest.raises(ray.exceptions.RayActorError):
        ray.get(actor.ready.remote(), timeout=30)
