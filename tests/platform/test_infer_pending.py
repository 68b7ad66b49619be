"""The units to do as columns: what goes in comes out, longest first, from either end."""

from __future__ import annotations

import pytest

from vda.platform.infer import pending
from vda.platform.infer.messages import Unit
from vda.platform.infer.pending import Pending, PendingQueue


def _units() -> list[Unit]:
    files = [Unit(f"s3://b/v{i}.mp4", f"v{i}", bytes=(i * 37) % 11 * 100) for i in range(11)]
    folders = [Unit(f"s3://b/seq{i}/", f"seq{i}", frames=10 * i) for i in range(3)]
    return files + folders


def test_units_come_out_as_they_went_in_longest_first_across_chunks(monkeypatch):
    monkeypatch.setattr(pending, "CHUNK", 4)  # several chunks and a remainder
    todo = Pending()
    for unit in _units():
        todo.append(unit)
    assert len(todo) == 14
    out = list(todo)
    assert sorted(out, key=lambda u: u.video_id) == sorted(_units(), key=lambda u: u.video_id)
    sizes = [(u.bytes, u.frames or 0) for u in out]
    assert sizes == sorted(sizes, reverse=True)  # bytes, then a sequence's frames
    assert {u.video_id for u in out[-2:]} == {"seq0", "v0"}  # no bytes, no frames known


def test_the_queue_takes_from_both_ends_and_puts_retries_in_front():
    todo = Pending()
    for unit in _units():
        todo.append(unit)
    queue = PendingQueue(todo)
    longest, shortest = todo[0], todo[len(todo) - 1]
    assert not queue.last_alone() and queue.pop() == shortest
    assert queue.popleft() == longest and len(queue) == 12
    retry = longest.with_(attempt=2)
    queue.appendleft(retry)
    assert queue.popleft() == retry and len(queue) == 12
    taken = [queue.pop() for _ in range(12)]
    assert not queue and len(set(taken)) == 12
    with pytest.raises(IndexError):
        queue.popleft()
    queue.appendleft(retry.with_(alone=True))  # only the front left: both ends take it
    assert queue.last_alone() and queue.pop() == retry.with_(alone=True)
    assert not queue.last_alone()
