"""The units to do, as columns: a million pending videos cost arrays, not a million objects.

The plan appends each to-do video as the listing streams in; every
`CHUNK` they become Arrow columns (the URI, the id, bytes, frames), so the
Python objects of at most one chunk are alive at once; sealed, they are
sorted longest first (by bytes: frames grow with a file's size). The scheduler takes
units from both ends (`PendingQueue`: the front holds the longest work and
split videos' segments, the back the shortest) and a `Unit` is made only
as it is taken. Retries and segments go back to the front as `Unit`s: there
are few of them at a time.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator

import pyarrow as pa
import pyarrow.compute as pc

from .messages import Unit

CHUNK = 10_000


class Pending:
    """Fresh units (whole videos, attempt 1) in listing order."""

    def __init__(self) -> None:
        self._rows: list[tuple[str, str, int, int | None]] = []
        self._chunks: list[pa.RecordBatch] = []
        self._columns: pa.Table | None = None

    def append(self, unit: Unit) -> None:
        self._rows.append((unit.video, unit.video_id, unit.bytes, unit.frames))
        if len(self._rows) >= CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._rows:
            video, video_id, size, frames = zip(*self._rows, strict=True)
            self._chunks.append(
                pa.record_batch(
                    [
                        pa.array(video, pa.string()),
                        pa.array(video_id, pa.string()),
                        pa.array(size, pa.int64()),
                        pa.array(frames, pa.int64()),
                    ],
                    names=["video", "video_id", "bytes", "frames"],
                )
            )
            self._rows = []
        self._columns = None

    @property
    def columns(self) -> pa.Table:
        if self._columns is None or self._rows:
            self._flush()
            table = pa.Table.from_batches(self._chunks, schema=_SCHEMA)
            # longest first (bytes, then an image sequence's frames): the queue's front goes
            # to free actors and its back fills the second places, so long work starts early
            order = pc.sort_indices(table, [("bytes", "descending"), ("frames", "descending")])
            self._columns = table.take(order).combine_chunks()  # one array each: O(1) by index
            self._chunks = self._columns.to_batches()
        return self._columns

    def __len__(self) -> int:
        return len(self._rows) + sum(c.num_rows for c in self._chunks)

    def __getitem__(self, index: int) -> Unit:
        columns = self.columns
        frames = columns["frames"][index].as_py()
        return Unit(
            columns["video"][index].as_py(),
            columns["video_id"][index].as_py(),
            frames=frames,
            bytes=columns["bytes"][index].as_py(),
        )

    def __iter__(self) -> Iterator[Unit]:
        for index in range(len(self)):
            yield self[index]


_SCHEMA = pa.schema(
    [
        ("video", pa.string()),
        ("video_id", pa.string()),
        ("bytes", pa.int64()),
        ("frames", pa.int64()),
    ]
)


class PendingQueue:
    """The scheduler's queue: `Unit`s put back at the front (retries, segments), then the
    fresh units of a `Pending`, taken from either end."""

    def __init__(self, fresh: Pending) -> None:
        self.fresh = fresh
        self.front: deque[Unit] = deque()
        self.first, self.stop = 0, len(fresh)  # the fresh units not taken: [first, stop)

    def __len__(self) -> int:
        return len(self.front) + self.stop - self.first

    def __bool__(self) -> bool:
        return len(self) > 0

    def popleft(self) -> Unit:
        if self.front:
            return self.front.popleft()
        if self.first >= self.stop:
            raise IndexError("pop from an empty queue")
        self.first += 1
        return self.fresh[self.first - 1]

    def pop(self) -> Unit:
        if self.first < self.stop:
            self.stop -= 1
            return self.fresh[self.stop]
        return self.front.pop()

    def peek(self, from_end: bool = False) -> Unit:
        """The unit `pop` (from_end) or `popleft` would take, left in the queue."""
        if from_end:
            return self.fresh[self.stop - 1] if self.first < self.stop else self.front[-1]
        if self.front:
            return self.front[0]
        if self.first >= self.stop:
            raise IndexError("peek into an empty queue")
        return self.fresh[self.first]

    def appendleft(self, unit: Unit) -> None:
        self.front.appendleft(unit)

    def last_alone(self) -> bool:
        """Whether the unit `pop` would take must run alone (a fresh unit never does: no
        Unit is made to say so)."""
        return self.first >= self.stop and bool(self.front) and self.front[-1].alone
