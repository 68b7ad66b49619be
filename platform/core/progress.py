"""Progress of a job over many items, readable at archive scale.

A million-video job cannot print a line per video, and a ten-video job
should: so per-item lines print when the job is small (`SMALL` items or
fewer) or asked to be verbose, and a status line (done, failed, to go,
frames/s, ETA, plus what the caller adds) prints every `every_s` seconds and
once at the end. On a terminal a tqdm bar shows the same counts in place;
lines printed meanwhile go above it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

SMALL = 20


class JobProgress:
    def __init__(
        self,
        total: int,
        label: str,
        out: Callable[[str], None] = print,
        every_s: float = 30.0,
        verbose: bool = False,
        unit: str = "videos",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.label, self.every_s = total, label, every_s
        self.verbose = verbose or total <= SMALL
        self.done = self.failed = self.frames = 0
        self.extra: Callable[[], str] = lambda: ""
        self._out = out
        self._clock = clock
        self._start = self._last = clock()
        self._last_count = -1
        self._bar = None
        if out is print and sys.stdout.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, unit=unit.rstrip("s"), dynamic_ncols=True, leave=False)
            self._out = self._bar.write

    def line(self, text: str) -> None:
        """A line that always prints (retries, the pool's events, failures)."""
        self._out(f"{self.label}: {text}")

    def item(self, text: str) -> None:
        """A per-item line: printed for small jobs or with --verbose."""
        if self.verbose:
            self.line(text)

    def finished(self, ok: bool, frames: int = 0) -> None:
        if ok:
            self.done += 1
            self.frames += frames
        else:
            self.failed += 1
        if self._bar is not None:
            self._bar.update(1)
            self._bar.set_postfix_str(f"{self.failed} failed, {self.rate():.1f} frames/s")
        if self.verbose:
            self.status()

    def tick(self) -> None:
        """Call often: prints the status line when `every_s` has passed since the last one."""
        if self._clock() - self._last >= self.every_s:
            self.status()

    def rate(self) -> float:
        elapsed = self._clock() - self._start
        return self.frames / elapsed if elapsed > 0 else 0.0

    def final(self) -> None:
        """The closing status line, unless the last one printed already said it all."""
        if self._last_count != self.done + self.failed:
            self.status()

    def status(self) -> None:
        self._last = self._clock()
        self._last_count = self.done + self.failed
        elapsed = self._last - self._start
        finished = self.done + self.failed
        left = self.total - finished
        eta = duration(elapsed / finished * left) if finished and left else "-"
        extra = self.extra()
        rate = f"; {self.rate():.1f} frames/s" if self.frames else ""
        self._out(
            f"{self.label}: [{finished}/{self.total}] {self.done} done, {self.failed} failed, "
            f"{left} to go{rate}; ETA {eta}" + (f"; {extra}" if extra else "")
        )

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def duration(seconds: float) -> str:
    """Seconds as a person reads them: 45 s, 12 min, 3.5 h."""
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
