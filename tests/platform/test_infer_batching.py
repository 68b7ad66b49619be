"""Batches of short videos: the fitted seconds, the share of the queue, where a batch stops."""

from __future__ import annotations

import pytest

from vda.platform.infer.batching import UnitSeconds, batch_limit, take_batch
from vda.platform.infer.messages import Unit
from vda.platform.infer.pending import Pending, PendingQueue


def _video(size: int, name: str = "v") -> Unit:
    return Unit(f"s3://b/{name}.mp4", name, bytes=size)


def test_seconds_are_fitted_as_a_fixed_cost_plus_a_cost_per_byte():
    seconds = UnitSeconds()
    assert seconds.estimate(_video(100)) is None  # nothing measured: nothing is batched
    seconds.learn(100, 1.0)
    assert seconds.estimate(_video(150)) == 1.0  # one size seen: its mean
    assert seconds.estimate(_video(201)) is None  # over twice the largest seen: alone
    seconds.learn(300, 2.0)  # slope (2 - 1) / 200 = 0.005 s a byte, fixed 1 - 0.5 = 0.5 s
    assert seconds.estimate(_video(200)) == pytest.approx(1.5)
    assert seconds.estimate(_video(10)) == pytest.approx(0.55)
    assert seconds.estimate(_video(0)) is None  # size unknown (an image sequence): alone
    seconds.learn(0, 99.0)  # and it teaches nothing
    assert seconds.estimate(_video(200)) == pytest.approx(1.5)


def test_a_fit_that_would_give_negative_seconds_goes_through_the_origin_instead():
    seconds = UnitSeconds()
    seconds.learn(100, 0.1)
    seconds.learn(200, 1.0)  # slope 0.009, fixed 0.55 - 1.35 < 0
    assert seconds.estimate(_video(1)) == pytest.approx(1.1 / 300)
    assert seconds.estimate(_video(300)) == pytest.approx(1.1)  # 1.1 s over 300 bytes
    falling = UnitSeconds()
    falling.learn(100, 2.0)
    falling.learn(200, 1.0)  # larger and faster: no negative slope, the mean instead
    assert falling.estimate(_video(400)) == pytest.approx(1.5)


def test_only_the_last_measurements_count():
    seconds = UnitSeconds(window=2)
    seconds.learn(100, 50.0)  # the first video: the model's warm-up
    seconds.learn(100, 1.0)
    seconds.learn(100, 1.0)
    assert seconds.estimate(_video(100)) == 1.0


def test_each_ready_actor_gets_an_equal_share_of_the_queue_at_most():
    assert batch_limit(queued=100, ready_actors=4, batch_max=32) == 25
    assert batch_limit(queued=1000, ready_actors=4, batch_max=32) == 32
    assert batch_limit(queued=3, ready_actors=4, batch_max=32) == 1  # the tail: one each
    assert batch_limit(queued=5, ready_actors=0, batch_max=32) == 5


def _queue(sizes: list[int]) -> PendingQueue:
    todo = Pending()
    for i, size in enumerate(sizes):
        todo.append(_video(size, f"v{i}"))
    return PendingQueue(todo)  # longest first


def _measured(per_byte: float) -> UnitSeconds:
    seconds = UnitSeconds()
    seconds.learn(1, per_byte)
    seconds.learn(4000, 4000 * per_byte)
    return seconds


def test_a_batch_takes_units_from_its_side_of_the_queue_while_they_fit_its_seconds():
    seconds = _measured(0.001)  # a 1,000-byte video: 1 s
    queue = _queue([4000, 3000, 2000, 1000, 1000, 500, 500, 500])
    first = queue.pop()  # the back: the shortest
    batch = take_batch(queue, first, True, seconds, budget_s=2.0, limit=32)
    assert [u.bytes for u in batch] == [500, 500, 500]  # 1.5 s; a 1,000 more would be 2.5
    assert queue.peek(from_end=True).bytes == 1000 and len(queue) == 5
    first = queue.popleft()  # the front: 4 s alone is over the budget, and goes alone
    assert take_batch(queue, first, False, seconds, budget_s=2.0, limit=32) == [first]
    first = queue.pop()
    batch = take_batch(queue, first, True, seconds, budget_s=10.0, limit=2)
    assert [u.bytes for u in batch] == [1000, 1000]  # the limit, not the budget
    first = queue.pop()
    assert take_batch(queue, first, True, seconds, budget_s=0.0, limit=32) == [first]  # off


def test_nothing_is_batched_before_a_measurement_nor_beside_a_unit_that_runs_alone():
    queue = _queue([100] * 6)
    first = queue.pop()
    assert take_batch(queue, first, True, UnitSeconds(), budget_s=5.0, limit=32) == [first]
    seconds = _measured(0.001)
    alone = first.with_(alone=True, uncharged=1)
    assert take_batch(queue, alone, True, seconds, budget_s=5.0, limit=32) == [alone]
    retry = first.with_(attempt=2)  # its actor died under it: a suspect goes on its own
    assert take_batch(queue, retry, True, seconds, budget_s=5.0, limit=32) == [retry]
    segment = first.with_(segment=0, first=0, stop=3, plan="p")
    assert take_batch(queue, segment, True, seconds, budget_s=5.0, limit=32) == [segment]
    queue.appendleft(first.with_(alone=True, uncharged=1))  # a retry at the front
    fresh = queue.popleft()
    assert fresh.alone and take_batch(queue, fresh, False, seconds, 5.0, 32) == [fresh]
    second = queue.popleft()
    queue.appendleft(second.with_(alone=True, uncharged=1))
    third = queue.pop()
    batch = take_batch(queue, third, True, seconds, budget_s=5.0, limit=32)
    assert len(batch) == 4 and all(not u.alone for u in batch)  # the alone one stops it
    assert len(queue) == 1 and queue.peek().alone
