"""Turns on an actor's one model, so the work around it runs beside it.

An actor runs up to `actors.units_in_flight` calls at once (Ray threads of
the actor; a call's units one after another), but holds one model: each
unit opens its video, probes it and starts decoding ahead
(`sources.DecodeAhead`) while it waits for its turn, takes the model for its
frames, and hands it on as its last depth arrives; finishing the files and
the commit then run beside the next unit's model.
On a GPU node the model never waits for a video to open or a commit to land;
on a CPU node they share the cores, as before.

While it waits, a unit's activity says so (`waiting`), and the driver's stall
deadline leaves it alone: the unit ahead of it has its own deadline.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator

from .activity import Activity


class ModelTurns:
    """One model, taken in turn by the units running on an actor."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def turn(self, activity: Activity) -> Iterator[Callable[[], None]]:
        """Wait for the model, then hold it; the callable yielded hands it on early (once the
        last depth is out), and leaving the block hands it on in any case."""
        activity.step("queued", waiting=True)
        self._lock.acquire()
        activity.step("model")
        held = True

        def hand_on() -> None:
            nonlocal held
            if held:
                held = False
                self._lock.release()

        try:
            yield hand_on
        finally:
            hand_on()
