"""The driver's scheduler: units of work in, manifest rows out, whatever the actors do.

Plain Ray actors the driver owns (`pool.py` decides how many and when), not Ray Data's
`map_batches` (docs/infer.md says why: a poison video, segments):

- units (whole videos, segments of split videos) go to idle actors as soon as the first one
  is ready, longest work first (a split video's segments jump the queue: it bounds
  makespan); short videos travel several to a call (`batching.py`);
- an actor that dies is replaced, and its unit is retried until it has been attempted
  `max_attempts` times; then the video is recorded as failed with the reason, and the job
  goes on. `deaths.py` decides what a death costs: a `begin` call ahead of each call in the
  same queue tells a death while idle (nothing charged) from one while running; units begun
  together are retried alone, so the next death names the culprit;
- no wait without a deadline: every busy actor is asked now and then what its tasks are
  doing (`activity.py`); a unit or stitch without progress for its deadline (`stalls.py`) is
  stalled: the actor is killed, and the unit retried as an attempt with the reason;
- a split video's stitch runs in a thread of a pool actor and follows its segments in order;
  a segment that fails for good cancels it, and an actor that dies under it moves it to
  another actor (it resumes from storage);
- progress: a status line every `progress_s` seconds (`core.progress`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

from ..core.config import to_dict
from ..core.progress import JobProgress
from ..storage import StorageError, retrying
from .batching import UnitSeconds, batch_limit, take_batch
from .config import InferConfig
from .deaths import after_death
from .inflight import Call, InFlightVideo
from .lease import LeaseLost, OutputLease
from .manifest import ManifestRow
from .messages import Fenced, Finished, Ran, SegmentFailed, SegmentStored, Split, Unit
from .pending import Pending, PendingQueue
from .pool import ActorPool, Member, first_line
from .records import base_row
from .segments import read_records
from .stalls import StallPolicy
from .watch import StallWatch
from .worker import VideoDepthWorker


class InferScheduler:
    def __init__(
        self,
        config: InferConfig,
        checkpoint_sha256: str,
        on_row: Callable[[ManifestRow], None],
        progress: Callable[[str], None] = print,
        lease: OutputLease | None = None,
    ) -> None:
        import ray

        self.ray = ray
        self.config = config
        self.sha = checkpoint_sha256
        self.on_row = on_row
        self.out = progress
        actors = config.actors
        groups = {"stitch": actors.stitches_per_actor, "control": 1}
        actor_class = ray.remote(concurrency_groups=groups)(VideoDepthWorker).options(
            num_cpus=actors.cpus_per_actor,
            num_gpus=actors.gpus_per_actor or None,
            max_restarts=0,  # replaced by the driver, which counts the attempts
            max_task_retries=0,
            # the units in flight run at once and take turns on the model (`turns.py`)
            max_concurrency=actors.side_by_side,
        )
        config_dict = to_dict(config)
        self.lease = lease
        owner = lease.owner if lease is not None else ""
        self.pool = ActorPool(
            lambda: actor_class.remote(config_dict, self.sha, owner), actors, progress
        )
        self.model: dict[str, Any] = {}
        self.watch = StallWatch(ray, StallPolicy(actors.stall_timeout_s), progress)
        self.unit_seconds = UnitSeconds()  # what sizes the batches of short videos
        self.calls = 0  # actor calls made: below the units run when short videos batch

    def run(self, units: Pending) -> None:
        ray, pool = self.ray, self.pool
        queue = PendingQueue(units)  # a Unit is made as it is taken
        videos: dict[str, InFlightVideo] = {}  # the videos begun and not finished (split: kept)
        self.progress = progress = JobProgress(
            len(units), "vda infer", self.out, self.config.progress_s, self.config.verbose
        )
        progress.extra = lambda: f"actors {len(pool.ready())} running, {pool.starting()} starting"
        self.watch.progress = progress.line
        running: dict[Any, Call] = {}  # the process call's ref -> the call
        stitching: dict[Any, str] = {}  # ref -> video id
        self.videos, self.running = videos, running
        self.homeless: deque[InFlightVideo] = deque()  # stitches whose actor died, unhosted
        try:
            pool.start(len(queue))
            while queue or running or stitching or self.homeless:
                if self.lease is not None:
                    self.lease.check()  # LeaseLost: fenced; the actors are killed below
                waiting_for_actor = len(queue) + len(self.homeless)
                pool.maintain(work_left=waiting_for_actor + len(running), queued=waiting_for_actor)
                ready_count = len(pool.ready())
                for member in pool.with_room():
                    # a second place in a queue only while there is more work than actors: at
                    # the tail a unit waits for whichever actor frees first, not behind another
                    if not queue or (member.units and len(queue) < ready_count):
                        break
                    if member.units and queue.last_alone():
                        continue  # it waits for an actor with nothing else to run
                    # a place behind a running unit takes the shortest work (the queue's end):
                    # the longest, and split videos' segments, go to actors that are free
                    from_end = member.units > 0
                    limit = batch_limit(len(queue), ready_count, self.config.actors.batch_max)
                    first = queue.pop() if from_end else queue.popleft()
                    batch = take_batch(
                        queue, first, from_end, self.unit_seconds, self.config.actors.batch_s, limit
                    )
                    member.units += 1
                    self.calls += 1
                    for unit in batch:
                        if unit.video_id not in videos:
                            videos[unit.video_id] = InFlightVideo(unit)
                        self.watch.sent(unit.key)
                    if first.alone:
                        member.alone = first.key
                    # begin goes first, in the same queue as process
                    ack = member.actor.begin.remote([unit.key for unit in batch])
                    running[member.actor.process.remote(batch)] = Call(member, batch, ack)
                self._rehome_stitches(stitching)
                units = ((c.member, u, c.ack) for c in running.values() for u in c.units)
                self.watch.check(pool.ready(), units, self._may_wait)
                polls = [m.poll for m in pool.members if m.poll is not None]
                waiting = [*running, *stitching, *pool.pending_refs(), *polls]
                timeout = min(
                    self.config.progress_s, self.config.actors.check_s, self.watch.poll_interval()
                )
                if not waiting:  # every actor released or dead: the pool decides what follows
                    time.sleep(timeout)
                    continue
                ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
                for ref in ready:
                    if ref in stitching:
                        self._finish_stitch(ref, videos[stitching.pop(ref)], stitching)
                    elif ref in running:
                        self._finish_call(ref, running.pop(ref), queue, videos, stitching)
                    elif (member := pool.by_start_ref(ref)) is not None:
                        pool.on_ready(member)
                        if member.ready and not self.model:
                            self.model = dict(member.info)
                progress.tick()
            progress.final()
        finally:
            progress.close()
            pool.shutdown()

    # -- results -------------------------------------------------------------
    def _finish_call(self, ref, call: Call, queue, videos, stitching) -> None:
        ray, member = self.ray, call.member
        for unit in call.units:
            self.watch.done(unit.key)
        try:
            answers: list[Ran] = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            self.pool.died(member)
            self._actor_died(call, error, queue, videos)
            return
        except ray.exceptions.RayError as error:  # the call failed, the actor lives
            self._released(member, call.units[0])
            if many := len(call.units) > 1:  # again alone: the failure is one video's own
                self.progress.line(
                    f"a call of {len(call.units)} videos failed "
                    f"({first_line(error)}): each runs again alone"
                )
            for unit in call.units:
                if many and unit.uncharged < 2 * self.config.actors.max_attempts:
                    queue.appendleft(unit.with_(alone=True, uncharged=unit.uncharged + 1))
                else:
                    self._unit_failed(unit, first_line(error), videos)  # not Ray's traceback
            return
        self._released(member, call.units[0])
        for unit, answer in zip(call.units, answers, strict=False):  # a fenced one ends it
            self._finish_unit(unit, answer, member, queue, stitching)

    def _finish_unit(self, unit: Unit, answer: Ran, member: Member, queue, stitching) -> None:
        result = answer.result
        video = self.videos[unit.video_id]
        match result:
            case Fenced(reason=reason):
                raise LeaseLost(reason)
            case Finished(row=row):
                if row.status == "done" and unit.attempt == 1 and not unit.uncharged:
                    self.unit_seconds.learn(unit.bytes, answer.seconds)
                self._emit(row)
            case SegmentStored():
                video.segments_left -= 1  # its stitch reads the record from storage
            case SegmentFailed(error=error):
                self._unit_failed(unit, error, self.videos)
            case Split(plan=key, segments=plan):
                self._split(video, key, plan, member, queue, stitching)

    @staticmethod
    def _released(member: Member, unit: Unit) -> None:
        member.units -= 1
        if member.alone == unit.key:
            member.alone = None

    def _split(
        self, video: InFlightVideo, key: str, plan, member: Member, queue, stitching
    ) -> None:
        """Queue a long video's segments (ahead of the rest: they bound the makespan) and
        start its stitch; segments an earlier run stored under the same plan are reused."""
        video_id = video.unit.video_id
        video.plan, video.segments = key, len(plan)
        try:
            records = retrying(
                lambda: read_records(self.config.output, video_id, key, len(plan), self.config.s3),
                "read the segments done before",
            )
        except StorageError as error:
            self._unit_failed(video.unit, str(error), self.videos)
            return
        todo = [i for i, record in enumerate(records) if record is None]
        video.segments_left = len(todo)
        self.progress.item(
            f"{video_id}: split into {len(plan)} segments"
            + (f" ({len(plan) - len(todo)} done before)" if len(todo) < len(plan) else "")
        )
        for i in reversed(todo):
            first, stop = plan[i]
            queue.appendleft(video.unit.with_(segment=i, first=first, stop=stop, plan=key))
        self._start_stitch(video, stitching, prefer=member)
        # a finished segment: its stitch reads the record from storage

    def _start_stitch(self, video: InFlightVideo, stitching, prefer: Member | None = None) -> None:
        host = self.pool.host_for_stitch() or prefer
        if host is None:  # every actor is full of stitches or dead: take the least loaded
            host = min(self.pool.ready(), key=lambda m: len(m.stitches), default=None)
        if host is None:  # none ready (a unit killed them all): wait for the pool's next one
            self.homeless.append(video)
            return
        video.stitch_attempt += 1
        video.stitch_host = host
        host.stitches.add(video.unit.video_id)
        unit = video.unit.with_(plan=video.plan)
        video.stitch = host.actor.stitch.remote(unit, video.segments, self.model)
        stitching[video.stitch] = video.unit.video_id
        key = f"stitch:{video.unit.video_id}"
        self.watch.sent(key)

    def _rehome_stitches(self, stitching) -> None:
        # a video whose segment failed for good needs no stitch: its row says why
        videos = [video for video in self.homeless if video.failed is None]
        self.homeless.clear()
        for video in videos:
            if self.pool.ready():
                self._start_stitch(video, stitching)
            else:
                self.homeless.append(video)

    def _finish_stitch(self, ref, video: InFlightVideo, stitching) -> None:
        ray, host = self.ray, video.stitch_host
        video.stitch, video.stitch_host = None, None
        key = f"stitch:{video.unit.video_id}"
        self.watch.done(key)
        if host is not None:
            host.stitches.discard(video.unit.video_id)
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            reason = first_line(error)
            if host is not None:
                self.pool.died(host)
                stalled = host.killed is not None and host.killed[0] == key
                if stalled:
                    reason = host.killed[1]
                elif (host.busy or host.killed) and video.stitch_uncharged < 2 * (
                    self.config.actors.max_attempts
                ):  # its unit killed it, or another task stalled: not the stitch's attempt
                    video.stitch_attempt -= 1
                    video.stitch_uncharged += 1
            if video.failed is None and video.stitch_attempt < self.config.actors.max_attempts:
                self.progress.line(
                    f"{video.unit.video_id}: the actor running its stitch died ({reason}); "
                    "moving the stitch to another actor"
                )
                self._start_stitch(video, stitching)
            elif video.failed is None:
                self._unit_failed(
                    video.unit,
                    f"stitch: {reason}",
                    None,
                    video=video,
                    attempts=video.stitch_attempt,
                )
            return
        except ray.exceptions.RayError as error:  # the call failed, the actor lives
            if video.failed is None:
                why = f"stitch: {type(error).__name__}: {first_line(error)}"
                self._emit(self._failed_row(video.unit, why))
            return
        match result:
            case Fenced(reason=reason):
                raise LeaseLost(reason)
            case Finished(row=row) if video.failed is None:
                self._emit(row)
            # Cancelled, or a video already failed: a segment failed, and its row says why

    def _actor_died(self, call: Call, error, queue, videos) -> None:
        """The actor running `call` died: `deaths.after_death` decides what it costs each unit."""
        member = call.member
        if member.began_at_death is None:  # decided once, by the first of its calls seen
            others = [r for r, c in self.running.items() if c.member is member]
            calls = [call, *(self.running[r] for r in others if not self._answered(r))]
            member.began_at_death = {u.key for c in calls if self._began(c.ack) for u in c.units}
        for unit in call.units:
            verdict = after_death(
                unit,
                member.began_at_death,
                member.killed,
                self.config.actors.max_attempts,
                first_line(error),
            )
            if verdict.retry is not None:
                self.progress.line(verdict.line)
                queue.appendleft(verdict.retry)
            else:
                self._unit_failed(unit, verdict.reason, videos, attempts=verdict.attempts)

    def _answered(self, ref) -> bool:
        """Whether a call on a dead actor had returned before the death (its units were
        not on the actor then)."""
        try:
            return bool(self.ray.wait([ref], timeout=0)[0] and self.ray.get(ref, timeout=0))
        except Exception:
            return False

    def _began(self, ack) -> bool:
        """Whether the actor answered the `begin` sent ahead of a unit (then it was alive and
        running that unit when it died)."""
        try:
            self.ray.get(ack, timeout=10)
            return True
        except Exception:
            return False

    def _may_wait(self, key: str) -> bool:
        """A unit waiting for its turn on its actor's model is not stalled (the unit ahead of
        it has its own deadline); a stitch waiting for its segments is not, while any is
        queued or running."""
        if not key.startswith("stitch:"):
            return True
        video = self.videos.get(key.removeprefix("stitch:"))
        return video is not None and video.segments_left > 0

    def _unit_failed(
        self,
        unit,
        reason: str,
        videos,
        attempts: int | None = None,
        video: InFlightVideo | None = None,
    ) -> None:
        video = video or videos[unit.video_id]
        if video.failed is not None:
            return  # another segment already failed this video
        video.failed = reason
        if video.stitch is not None and video.stitch_host is not None:
            # it would wait for the failed segment forever: it checks this flag as it waits
            video.stitch_host.actor.cancel_stitch.remote(unit.video_id)
        self._emit(self._failed_row(unit, reason, attempts or unit.attempt))

    def _failed_row(self, unit, reason: str, attempts: int = 1) -> ManifestRow:
        from .commit import record_failure

        model = self.model or {"size": "", "metric": False, "sha256": self.sha, "precision": ""}
        row = base_row(unit, self.config, {**model, "sha256": self.sha})
        row.error, row.attempts = reason, attempts
        if self.lease is not None:
            self.lease.check()
        owner = self.lease.owner if self.lease is not None else ""
        record_failure(self.config.output, row, self.config.s3, owner)
        return row

    def _emit(self, row: ManifestRow) -> None:
        if row.status == "done":
            self.progress.item(
                f"{row.video_id}: {row.frames} frames in {row.seconds:.1f} s "
                f"({row.frames_per_second:.1f} frames/s)"
            )
        else:
            self.progress.item(f"{row.video_id}: FAILED: {row.error}")
        self.progress.finished(row.status == "done", row.frames)
        video = self.videos.get(row.video_id)
        if video is not None and video.plan is None:  # nothing more comes for it: forgotten
            del self.videos[row.video_id]
        self.on_row(row)
