"""What the driver and the actors say to each other: typed, not dicts keyed by a string.

A list of `Unit`s goes to an actor in one call (a whole video, one segment
of a split video, or several short videos); a `Ran` per unit comes back,
with one of the result types. The scheduler matches on the type
(`match result: case Finished(row=row): ...`), so a new kind of answer is
a new class the type checker and the reader can follow, not a new string.
Slotted and frozen: a million pending units are a million small records.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from .manifest import ManifestRow


@dataclass(frozen=True, slots=True)
class Unit:
    """A unit of work: a video, or segment `segment` (windows [first, stop)) of one."""

    video: str  # its URI (a folder URI ending in "/" for an image sequence)
    video_id: str  # the normalised name of its outputs under the output prefix
    frames: int | None = None  # known from the listing (image sequences)
    bytes: int = 0  # from the listing (0: unknown)
    attempt: int = 1  # charged attempts, this one included
    uncharged: int = 0  # times its actor died before taking it (not charged)
    segment: int | None = None  # None: the whole video
    first: int = 0
    stop: int | None = None
    plan: str | None = None  # the split plan's key (segments and stitches)
    # runs on an actor with nothing beside it: its actor died running it with others, and a
    # death now is its own doing (the next one is charged to it alone)
    alone: bool = False

    @property
    def key(self) -> str:
        """Its name in reports: the video id, `#N` for segment N of a split video."""
        return self.video_id if self.segment is None else f"{self.video_id}#{self.segment}"

    @property
    def is_segment(self) -> bool:
        return self.segment is not None

    def with_(self, **changes: Any) -> Unit:
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, slots=True)
class Finished:
    """The video is done or failed, and its durable row is written."""

    row: ManifestRow


@dataclass(frozen=True, slots=True)
class Split:
    """The video is long: run these segments (first window, stop window or None)."""

    plan: str
    segments: list[tuple[int, int | None]]


@dataclass(frozen=True, slots=True)
class SegmentStored:
    """A segment's windows are in storage; its stitch reads them from there."""

    record: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SegmentFailed:
    """A segment failed in a way retrying will not fix (a corrupt stretch of the file)."""

    error: str


@dataclass(frozen=True, slots=True)
class Fenced:
    """The job lost its lease on the output prefix: nothing was committed."""

    reason: str


@dataclass(frozen=True, slots=True)
class Cancelled:
    """A stitch gave up because one of its segments failed for good."""


Result = Finished | Split | SegmentStored | SegmentFailed | Fenced | Cancelled


@dataclass(frozen=True, slots=True)
class Ran:
    """A unit's result and the seconds the actor spent on it (what sizes batches)."""

    result: Result
    seconds: float
