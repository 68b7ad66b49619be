"""The stall deadline: when a unit or a stitch that stopped moving is given up on.

Pure policy over reports (`activity.ActivityReport`) and a clock, tested
without Ray; the scheduler asks the actors and carries out the verdict
(kill the actor, retry the unit elsewhere, charge the attempt).

- A task is stalled when no step was seen for `deadline()` seconds: the
  actor's last report said it had been idle that long, or the actor has
  not answered the question for that long (a process frozen in native code).
- The deadline is `actors.stall_timeout_s`, raised to `gap_factor` times the
  longest pause between steps that any actor of the job has seen end: the
  first window of a large model on a slow device is one long pause that
  every later unit repeats, and must not read as a stall once it is known.
- A stitch waiting for a segment that is still queued or running is not
  stalled: the segment has its own deadline, and a segment that fails for
  good cancels the stitch.
"""

from __future__ import annotations

from dataclasses import dataclass

from .activity import ActivityReport


@dataclass
class StallPolicy:
    timeout_s: float
    gap_factor: float = 4.0
    longest_gap_s: float = 0.0
    model_learnt: bool = False  # some actor finished a pause in the model: a window's time

    cap_factor: float = 12.0  # one freak pause (a read that hung, then recovered) raises it
    # to 12 x stall_timeout_s at most

    def deadline(self, phase: str = "") -> float:
        """The deadline; in the model's phase before any pause has been learnt, 4 x longer
        (the first window of a large model on a slow device is one long pause)."""
        if phase == "model" and not self.model_learnt:
            return self.gap_factor * self.timeout_s
        learnt = min(self.gap_factor * self.longest_gap_s, self.cap_factor * self.timeout_s)
        return max(self.timeout_s, learnt)

    def poll_interval(self) -> float:
        """How often a busy actor is asked: a few times per deadline, never more than once a
        second (a thousand actors at the default are 20 small calls a second)."""
        return min(max(self.deadline() / 6, 1.0), 60.0)

    def learn(self, report: ActivityReport) -> None:
        self.longest_gap_s = max(self.longest_gap_s, report.longest_gap_s)
        self.model_learnt |= report.model_learnt


@dataclass
class Watched:
    """One task the driver waits on, and what it last knew of it."""

    key: str
    last_step: float  # driver clock: when it last moved (at first: when it was sent)
    phase: str = "queued"

    def update(self, report: ActivityReport | None, answered_at: float, waiting_ok: bool) -> None:
        """A report arrived (None: the actor does not run this task yet, or any more)."""
        if report is None:
            return
        self.phase = report.phase
        if report.waiting and waiting_ok:
            self.last_step = answered_at
        else:
            self.last_step = max(self.last_step, answered_at - report.idle_s)

    def stalled(self, now: float, deadline: float, asked_at: float | None) -> str | None:
        """Why it is stalled, or None. `asked_at`: an unanswered question's time."""
        idle = now - self.last_step
        if idle < deadline:
            return None
        if asked_at is not None and now - asked_at >= deadline:
            return f"stalled for {idle:.0f} s in {self.phase} (the actor stopped answering)"
        return f"stalled for {idle:.0f} s in {self.phase}"
