"""The driver's scheduler: units of work in, manifest rows out, whatever the actors do.

Why not a Ray Data `map_batches` over an actor pool (the first version): a
video that kills its actor on every attempt (out of memory, a decoder crash)
exhausts Ray Data's task retries and fails the whole dataset, taking every
other video's result with it; and a long video's segments, their stitch and
a per-video retry count do not fit a one-row-in, one-row-out map. Here the
driver owns plain Ray actors (`pool.py` decides how many and when):

- units (whole videos, segments of split videos) go to idle actors as soon
  as the first one is ready, longest work first (a split video's segments
  jump the queue: it bounds makespan);
- an actor that dies is replaced, and its unit is retried until it has been
  attempted `max_attempts` times; then the video is recorded as failed with
  the reason, and the job goes on;
- a split video's stitch runs in a thread of a pool actor and follows its
  segments in order; a segment that fails for good cancels it, and an actor
  that dies under it moves it to another actor (it resumes from storage);
- progress: a status line every `progress_s` seconds (`core.progress`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.config import to_dict
from ..core.progress import JobProgress
from .config import InferConfig
from .manifest import ManifestRow
from .pool import ActorPool, Member, first_line
from .records import base_row
from .segments import read_records
from .worker import VideoDepthWorker


@dataclass
class _Video:
    unit: dict[str, Any]
    plan: str | None = None
    segments: int = 0
    failed: str | None = None
    stitch: Any = None  # the stitch's ref, while it runs
    stitch_host: Member | None = None
    stitch_attempt: int = 0


class InferScheduler:
    def __init__(
        self,
        config: InferConfig,
        checkpoint_sha256: str,
        on_row: Callable[[ManifestRow], None],
        progress: Callable[[str], None] = print,
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
        )
        config_dict = to_dict(config)
        self.pool = ActorPool(lambda: actor_class.remote(config_dict, self.sha), actors, progress)
        self.model: dict[str, Any] = {}

    def run(self, units: list[dict[str, Any]]) -> None:
        ray, pool = self.ray, self.pool
        queue: deque[dict[str, Any]] = deque(dict(u, kind="video", attempt=1) for u in units)
        videos = {u["video_id"]: _Video(dict(u)) for u in units}
        self.progress = progress = JobProgress(
            len(units), "vda infer", self.out, self.config.progress_s, self.config.verbose
        )
        progress.extra = lambda: f"actors {len(pool.ready())} running, {pool.starting()} starting"
        running: dict[Any, tuple[Member, dict[str, Any]]] = {}  # ref -> (actor, unit)
        stitching: dict[Any, str] = {}  # ref -> video id
        self.homeless: deque[_Video] = deque()  # stitches whose actor died, none ready to host
        try:
            pool.start(len(queue))
            while queue or running or stitching or self.homeless:
                waiting_for_actor = len(queue) + len(self.homeless)
                pool.maintain(work_left=waiting_for_actor + len(running), queued=waiting_for_actor)
                for member in pool.idle():
                    if not queue:
                        break
                    unit = queue.popleft()
                    member.busy = True
                    running[member.actor.process.remote(unit)] = (member, unit)
                self._rehome_stitches(stitching)
                waiting = [*running, *stitching, *pool.pending_refs()]
                timeout = min(self.config.progress_s, self.config.actors.check_s)
                if not waiting:  # every actor released or dead: the pool decides what follows
                    time.sleep(timeout)
                    continue
                ready, _ = ray.wait(waiting, num_returns=1, timeout=timeout)
                for ref in ready:
                    if ref in stitching:
                        self._finish_stitch(ref, videos[stitching.pop(ref)], stitching)
                    elif ref in running:
                        member, unit = running.pop(ref)
                        self._finish_unit(ref, member, unit, queue, videos, stitching)
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
    def _finish_unit(self, ref, member: Member, unit, queue, videos, stitching) -> None:
        ray = self.ray
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            self.pool.died(member)
            self._actor_died(unit, error, queue, videos)
            return
        except ray.exceptions.RayError as error:  # the call failed, the actor lives
            member.busy = False
            self._unit_failed(unit, f"{type(error).__name__}: {error}", videos)
            return
        member.busy = False
        kind = result["kind"]
        video = videos[unit["video_id"]]
        if kind == "row":
            self._emit(ManifestRow.from_dict(result["row"]))
        elif kind == "split":
            video.plan, plan = result["plan"], result["segments"]
            video.segments = len(plan)
            # segments done by an earlier run (same plan key) are not redone
            records = read_records(
                self.config.output, unit["video_id"], video.plan, len(plan), self.config.s3
            )
            todo = [i for i, record in enumerate(records) if record is None]
            self.progress.item(
                f"{unit['video_id']}: split into {len(plan)} segments"
                + (f" ({len(plan) - len(todo)} done before)" if len(todo) < len(plan) else "")
            )
            for i in reversed(todo):
                first, stop = plan[i]
                queue.appendleft(
                    {**video.unit, "kind": "segment", "segment": i, "first": first, "stop": stop,
                     "plan": video.plan, "attempt": 1}
                )  # fmt: skip
            self._start_stitch(video, stitching, prefer=member)
        elif kind == "segment_failed":
            self._unit_failed(unit, result["error"], videos)
        # a finished segment: its stitch reads the record from storage

    def _start_stitch(self, video: _Video, stitching, prefer: Member | None = None) -> None:
        host = self.pool.host_for_stitch() or prefer
        if host is None:  # every actor is full of stitches or dead: take the least loaded
            host = min(self.pool.ready(), key=lambda m: len(m.stitches), default=None)
        if host is None:  # none ready (a unit killed them all): wait for the pool's next one
            self.homeless.append(video)
            return
        video.stitch_attempt += 1
        video.stitch_host = host
        host.stitches.add(video.unit["video_id"])
        unit = dict(video.unit, plan=video.plan)
        video.stitch = host.actor.stitch.remote(unit, video.segments, self.model)
        stitching[video.stitch] = video.unit["video_id"]

    def _rehome_stitches(self, stitching) -> None:
        # a video whose segment failed for good needs no stitch: its row says why
        videos = [video for video in self.homeless if video.failed is None]
        self.homeless.clear()
        for video in videos:
            if self.pool.ready():
                self._start_stitch(video, stitching)
            else:
                self.homeless.append(video)

    def _finish_stitch(self, ref, video: _Video, stitching) -> None:
        ray, host = self.ray, video.stitch_host
        video.stitch, video.stitch_host = None, None
        if host is not None:
            host.stitches.discard(video.unit["video_id"])
        try:
            result = ray.get(ref)
        except ray.exceptions.RayActorError as error:
            if host is not None:
                self.pool.died(host)
                if host.busy:  # the unit it was running killed it: that unit's attempt, not ours
                    video.stitch_attempt -= 1
            if video.failed is None and video.stitch_attempt < self.config.actors.max_attempts:
                self.progress.line(
                    f"{video.unit['video_id']}: the actor running its stitch died; "
                    "moving the stitch to another actor"
                )
                self._start_stitch(video, stitching)
            elif video.failed is None:
                self._unit_failed(
                    video.unit, f"stitch: {first_line(error)}", None, video=video,
                    attempts=video.stitch_attempt,
                )  # fmt: skip
            return
        except ray.exceptions.RayError as error:
            result = {"kind": "row", "row": None, "error": f"{type(error).__name__}: {error}"}
        if video.failed is not None or result["kind"] == "cancelled":
            return  # cancelled: a segment failed, and the row says why
        if result.get("row") is None:
            self._emit(self._failed_row(video.unit, f"stitch: {result['error']}"))
        else:
            self._emit(ManifestRow.from_dict(result["row"]))

    def _actor_died(self, unit, error, queue, videos) -> None:
        attempts = unit["attempt"]
        if attempts < self.config.actors.max_attempts:
            self.progress.line(
                f"{unit['video_id']}: the actor died (attempt {attempts} of "
                f"{self.config.actors.max_attempts}); retrying"
            )
            queue.appendleft(dict(unit, attempt=attempts + 1))
            return
        what = f"segment {unit['segment']}" if unit["kind"] == "segment" else "the video"
        reason = (
            f"the actor died on each of {attempts} attempts at {what} "
            f"(out of memory or a crash in native code?): {first_line(error)}"
        )
        self._unit_failed(unit, reason, videos, attempts=attempts)

    def _unit_failed(
        self, unit, reason: str, videos, attempts: int | None = None, video: _Video | None = None
    ) -> None:
        video = video or videos[unit["video_id"]]
        if video.failed is not None:
            return  # another segment already failed this video
        video.failed = reason
        if video.stitch is not None and video.stitch_host is not None:
            # it would wait for the failed segment forever: it checks this flag as it waits
            video.stitch_host.actor.cancel_stitch.remote(unit["video_id"])
        self._emit(self._failed_row(unit, reason, attempts or unit.get("attempt", 1)))

    def _failed_row(self, unit, reason: str, attempts: int = 1) -> ManifestRow:
        from .commit import record_failure

        model = self.model or {"size": "", "metric": False, "sha256": self.sha, "precision": ""}
        row = base_row(unit, self.config, {**model, "sha256": self.sha})
        row.error, row.attempts = reason, attempts
        record_failure(self.config.output, row, self.config.s3)
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
        self.on_row(row)
