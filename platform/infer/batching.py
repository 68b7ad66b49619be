"""Several short videos in one actor call, sized from the seconds the job has measured.

A video of a second or two is mostly overhead around its model: the two
actor calls (`begin`, `process`), the round trip, the driver's bookkeeping.
Where the queue holds many such videos, the scheduler sends several in one
call, as many as fit in `actors.batch_s` seconds of work by the estimate
below, and no more than the queue can spare: each ready actor gets a share
of what is left, so the tail of a job is not one actor's long batch.

Nothing is batched before a unit has been measured (the first calls carry
one unit each), nor a unit that must run alone, a retry charged with an
earlier death, or a split video's segment.
Each unit keeps its own attempt count, commit and manifest row; an actor
that dies holding a batch charges none of its units and retries each alone
(`deaths.py`), so a poison video is found and charged on its own.
"""

from __future__ import annotations

from collections import deque

from .messages import Unit
from .pending import PendingQueue


class UnitSeconds:
    """Seconds of actor time a unit takes, fitted as `fixed + per_byte * bytes` by least
    squares over the last `window` finished videos (a video's bytes from the listing).
    No estimate (it travels alone) for a video of unknown size (an image sequence, a
    `.txt` list's entry) or over twice the largest measured: a fit is not extrapolated."""

    def __init__(self, window: int = 64) -> None:
        self._samples: deque[tuple[int, float]] = deque(maxlen=window)
        self._fit: tuple[float, float] | None = None

    def learn(self, size: int, seconds: float) -> None:
        if size > 0:
            self._samples.append((size, max(0.0, seconds)))
            self._fit = None

    def estimate(self, unit: Unit) -> float | None:
        """None until a video of about its size has been measured."""
        if not self._samples or unit.bytes <= 0:
            return None
        if unit.bytes > 2 * max(size for size, _ in self._samples):
            return None
        if self._fit is None:
            self._fit = _least_squares(self._samples)
        fixed, per_byte = self._fit
        return fixed + per_byte * unit.bytes


def _least_squares(samples: deque[tuple[int, float]]) -> tuple[float, float]:
    """(fixed, per_byte), neither negative; sizes that do not vary give the mean seconds."""
    n = len(samples)
    mean_x = sum(x for x, _ in samples) / n
    mean_y = sum(y for _, y in samples) / n
    spread = sum((x - mean_x) ** 2 for x, _ in samples)
    if spread <= 0:
        return mean_y, 0.0
    slope = sum((x - mean_x) * (y - mean_y) for x, y in samples) / spread
    slope = max(0.0, slope)
    fixed = mean_y - slope * mean_x
    if fixed < 0:  # a line through the origin instead
        total_x = sum(x for x, _ in samples)
        return 0.0, (sum(y for _, y in samples) / total_x if total_x else 0.0)
    return fixed, slope


def batch_limit(queued: int, ready_actors: int, batch_max: int) -> int:
    """The most units one call may take: an equal share of the queue per ready actor."""
    return max(1, min(batch_max, queued // max(1, ready_actors)))


def take_batch(
    queue: PendingQueue,
    first: Unit,
    from_end: bool,
    seconds: UnitSeconds,
    budget_s: float,
    limit: int,
) -> list[Unit]:
    """`first` (already taken) and the units after it on the same side of the queue, while
    their estimated seconds together stay within `budget_s`."""
    batch = [first]
    total = _batchable(first, seconds)
    if total is None or budget_s <= 0:
        return batch
    while len(batch) < limit and queue:
        after = _batchable(queue.peek(from_end), seconds)
        if after is None or total + after > budget_s:
            break
        batch.append(queue.pop() if from_end else queue.popleft())
        total += after
    return batch


def _batchable(unit: Unit, seconds: UnitSeconds) -> float | None:
    """Its estimated seconds, or None when it travels alone."""
    if unit.alone or unit.is_segment or unit.attempt > 1:  # a suspect travels on its own
        return None
    return seconds.estimate(unit)
