"""What the scheduler keeps of the work in flight: the videos begun and the calls sent.

A video is kept from its first unit's dispatch to its row (a split video
until its stitch ends); a call from its dispatch to its answer. Nothing else
of a video lives on the driver: the units to do are columns (`pending.py`),
the rows go to storage as they come (`job.py`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .messages import Unit
from .pool import Member


@dataclass
class InFlightVideo:
    """A video begun: its first unit, and for a split video its plan and stitch."""

    unit: Unit
    plan: str | None = None
    segments: int = 0
    failed: str | None = None
    stitch: Any = None  # the stitch's ref, while it runs
    stitch_host: Member | None = None
    stitch_attempt: int = 0
    stitch_uncharged: int = 0  # restarts after deaths that were not the stitch's doing
    segments_left: int = 0  # segments queued or running: its stitch may wait that long


@dataclass(slots=True)
class Call:
    """One call to an actor: its units (several short videos, or one) and its `begin`."""

    member: Member
    units: list[Unit]
    ack: Any  # the begin's ref: answered, the actor had taken these units
