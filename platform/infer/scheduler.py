"""The driver's actor pool: units of work in, manifest rows out, whatever the actors do.

Why not a Ray Data `map_batches` over an actor pool (the first version): a
video that kills its actor on every attempt (out of memory, a decoder crash)
exhausts Ray Data's task retries and fails the whole dataset, taking every
other video's result with it; and a long video's segments, their stitch and
a per-video retry count do not fit a one-row-in, one-row-out map. Here each
actor is a plain Ray actor the driver owns:

- units (whole videos, segments of split videos) go to idle actors, longest
  work first (a split video's segments jump the queue: it bounds makespan);
- an actor that dies is replaced, and its unit is retried until it has been
  attempted `max_attempts` times; then the video is recorded as failed with
  the reason, and the job goes on;
- a split video's stitch starts as a CPU task with its segments and follows
  them in order; a segment that fails for good cancels it;
- a progress line (videos done / failed / to go, frames/s, ETA) every
  `progress_s` seconds and per finished video.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..core.config import to_dict
from .config import InferConfig
from .manifest import ManifestRow
from .segments import read_records
from .worker import VideoDepthWorker, base_row, stitch


@dataclass
class _Video:
    unit: dict[str, Any]
    plan: str | None = None
    failed: str | None = None
    stitch: Any = None  # the stitch task's ref, while it runs


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
        self.progress = progress
        actors = config.actors
        self._actor_class = ray.remote(VideoDepthWorker).options(
            num_cpus=actors.cpus_per_actor,
            num_gpus=actors.gpus_per_actor or None,
            max_restarts=0,  # replaced by the driver, which counts the attempts
            max_task_retries=0,
        )
        self._stitch = ray.remote(stitch).options(
            num_cpus=config.split.stitch_cpus, max_retries=actors.max_attempts - 1
        )
        self._config_dict = to_dict(config)
        self.model: dict[str, Any] = {}
        self.startup_s = 0.0  # until every actor had loaded the model

    def _new_actor(self):
        return self._actor_class.remote(self._config_dict, self.sha)

    def run(self, units: list[dict[str, Any]]) -> None:
        ray = self.ray
        queue: deque[dict[str, Any]] = deque(dict(u, kind="video", attempt=1) for u in units)
        videos = {u["video_id"]: _Video(dict(u)) for u in units}
        size = max(1, min(self.config.actors.num_actors, len(units)))
        idle = [self._new_actor() for _ in range(size)]
        started = time.monotonic()
        # model loads; measured apart from the work (an actor that cannot start fails here)
        self.model = ray.get([actor.ready.remote() for actor in idle])[0]
        self.startup_s = time.monotonic() - started
        running: dict[Any, tuple[Any, dict[str, Any]]] = {}  # ref -> (actor, unit)
        stitching: dict[Any, str] = {}  # ref -> video id
        self._started = time.monotonic()
        self._done = self._failed = self._frames = 0
        self._total = len(units)
        last_report = time.monotonic()
        while queue or running or stitching:
            while queue and idle:
                unit = queue.popleft()
                actor = idle.pop()
                running[actor.process.remote(unit)] = (actor, unit)
            ready, _ = ray.wait(
                [*running, *stitching], num_returns=1, timeout=self.config.progress_s
            )
            for ref in ready:
                if ref in stitching:
                    video_id = stitching.pop(ref)
                    self._finish_stitch(ref, videos[video_id])
                    continue
                actor, unit = running.pop(ref)
                try:
                    result = ray.get(ref)
                except ray.exceptions.RayActorError as error:
                    ray.kill(actor, no_restart=True)
                    idle.append(self._new_actor())
                    self._actor_died(unit, error, queue, videos)
                    continue
                except ray.exceptions.RayError as error:  # the call failed, the actor lives
                    idle.append(actor)
                    self._unit_failed(unit, f"{type(error).__name__}: {error}", videos)
                    continue
                idle.append(actor)
                self.model = result.get("model", self.model)
                ref_stitch = self._handle(unit, result, queue, videos)
                if ref_stitch is not None:
                    stitching[ref_stitch] = unit["video_id"]
            if time.monotonic() - last_report >= self.config.progress_s:
                self._report()
                last_report = time.monotonic()
        for actor in idle:
            ray.kill(actor, no_restart=True)

    # -- results -------------------------------------------------------------
    def _handle(self, unit, result, queue, videos):
        video = videos[unit["video_id"]]
        kind = result["kind"]
        if kind == "row":
            self._emit(ManifestRow.from_dict(result["row"]))
        elif kind == "split":
            video.plan = result["plan"]
            plan = result["segments"]
            # segments done by an earlier run (same plan key) are not redone
            records = read_records(
                self.config.output, unit["video_id"], video.plan, len(plan), self.config.s3
            )
            todo = [i for i, record in enumerate(records) if record is None]
            self.progress(
                f"vda infer: {unit['video_id']}: split into {len(plan)} segments"
                + (f" ({len(plan) - len(todo)} done before)" if len(todo) < len(plan) else "")
            )
            for i in reversed(todo):
                first, stop = plan[i]
                queue.appendleft(
                    {**video.unit, "kind": "segment", "segment": i, "first": first, "stop": stop,
                     "plan": video.plan, "attempt": 1}
                )  # fmt: skip
            video.stitch = self._stitch.remote(
                self._config_dict, dict(video.unit, plan=video.plan), len(plan), self.model
            )
            return video.stitch
        elif kind == "segment_failed":
            self._unit_failed(unit, result["error"], videos)
        return None  # a finished segment: its stitch reads the record from storage

    def _finish_stitch(self, ref, video: _Video) -> None:
        video.stitch = None
        if video.failed is not None:
            return  # cancelled: a segment failed, and the row says why
        try:
            result = self.ray.get(ref)
            row = ManifestRow.from_dict(result["row"])
        except self.ray.exceptions.RayError as error:
            row = self._failed_row(video.unit, f"stitch: {type(error).__name__}: {error}")
        self._emit(row)

    def _actor_died(self, unit, error, queue, videos) -> None:
        attempts = unit["attempt"]
        if attempts < self.config.actors.max_attempts:
            self.progress(
                f"vda infer: {unit['video_id']}: the actor died (attempt {attempts} of "
                f"{self.config.actors.max_attempts}); retrying"
            )
            queue.appendleft(dict(unit, attempt=attempts + 1))
            return
        what = f"segment {unit['segment']}" if unit["kind"] == "segment" else "the video"
        reason = (
            f"the actor died on each of {attempts} attempts at {what} "
            f"(out of memory or a crash in native code?): {_first_line(error)}"
        )
        self._unit_failed(unit, reason, videos, attempts=attempts)

    def _unit_failed(self, unit, reason: str, videos, attempts: int | None = None) -> None:
        video = videos[unit["video_id"]]
        if video.failed is not None:
            return  # another segment already failed this video
        video.failed = reason
        if video.stitch is not None:  # it would wait for the failed segment forever
            self.ray.cancel(video.stitch, force=True)
        self._emit(self._failed_row(unit, reason, attempts or unit["attempt"]))

    def _failed_row(self, unit, reason: str, attempts: int = 1) -> ManifestRow:
        from .commit import record_failure

        model = self.model or {"size": "", "metric": False, "sha256": self.sha, "precision": ""}
        row = base_row(unit, self.config, {**model, "sha256": self.sha})
        row.error, row.attempts = reason, attempts
        record_failure(self.config.output, row, self.config.s3)
        return row

    def _emit(self, row: ManifestRow) -> None:
        if row.status == "done":
            self._done += 1
            self._frames += row.frames
            self.progress(
                f"vda infer: {row.video_id}: {row.frames} frames in {row.seconds:.1f} s "
                f"({row.frames_per_second:.1f} frames/s)"
            )
        else:
            self._failed += 1
            self.progress(f"vda infer: {row.video_id}: FAILED: {row.error}")
        self.on_row(row)
        self._report()

    def _report(self) -> None:
        elapsed = time.monotonic() - self._started
        finished = self._done + self._failed
        left = self._total - finished
        fps = self._frames / elapsed if elapsed > 0 else 0.0
        eta = f"{_duration(elapsed / finished * left)}" if finished and left else "-"
        self.progress(
            f"vda infer: [{finished}/{self._total}] {self._done} done, {self._failed} failed, "
            f"{left} to go; {fps:.1f} frames/s; ETA {eta}"
        )


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0][:300] if text else type(error).__name__


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
