"""What an actor's death costs the units it held: the policy alone, tested without Ray.

The scheduler knows, for a dead actor, which of its units had begun (each
unit is preceded by a `begin` call the actor answers as it takes it) and
whether the driver killed it for a stall (and for which task). From that:

- a unit the actor had not begun (it died idle), or one beside a task the
  driver killed for a stall, is sent again, uncharged (at most twice
  `max_attempts` times: past that a death is charged after all);
- a unit begun together with others (side by side on a GPU actor, or in
  one call with other short videos) is sent again alone and uncharged:
  nothing runs beside it then, so the next death is its own;
- otherwise the death is the unit's attempt: retried until `max_attempts`,
  then its video fails with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from .messages import Unit


@dataclass(frozen=True)
class DeathVerdict:
    retry: Unit | None  # queued again at the front; None: the unit fails with `reason`
    line: str = ""  # what the progress says
    reason: str = ""
    attempts: int = 0


def after_death(
    unit: Unit,
    began: set[str],
    killed: tuple[str, str] | None,
    max_attempts: int,
    error: str,
) -> DeathVerdict:
    """`began`: keys of the units the actor had begun; `killed`: (task key, reason) when
    the driver killed it for a stall; `error`: the death's first line."""
    key, uncharged = unit.key, unit.uncharged
    stalled = killed[1] if killed and killed[0] == key else None
    taken = key in began
    if killed is None and taken and len(began) > 1:
        return DeathVerdict(
            unit.with_(alone=True, uncharged=uncharged + 1),
            f"{key}: its actor died holding {len(began)} units begun together ({error}); "
            "retried alone, no attempt charged",
        )
    charged = stalled is not None or (killed is None and taken)
    if not charged and uncharged < 2 * max_attempts:
        return DeathVerdict(
            unit.with_(uncharged=uncharged + 1),
            f"{key}: its actor died before taking it ({error}); "
            "sent to another actor, no attempt charged",
        )
    attempts = unit.attempt
    why = stalled or "the actor died"
    if attempts < max_attempts:
        return DeathVerdict(
            unit.with_(attempt=attempts + 1),
            f"{unit.video_id}: {why} (attempt {attempts} of {max_attempts}); retrying",
        )
    what = f"segment {unit.segment}" if unit.is_segment else "the video"
    if stalled:
        reason = f"{what} {stalled} (attempt {attempts} of {attempts})"
    else:
        reason = (
            f"the actor died on each of {attempts} attempts at {what} "
            f"(out of memory or a crash in native code?): {error}"
        )
    return DeathVerdict(None, reason=reason, attempts=attempts)
