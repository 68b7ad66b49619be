"""The pool's actor: one model, units of work in, committed outputs out.

Each actor loads the model once (`load`, which the pool waits on with a
deadline); split videos' stitches run in threads of it (`stitch.py`). A unit is a whole video or one segment of a
long one (`segments.py`). Per video: frames stream from object storage (a
seekable ranged-GET stream; PyAV reads it directly, nothing is downloaded
whole) through a decode thread into the streaming engine; the writers
(compression, H.264, uploads) run on a thread of their own beside the model
(`video.process.BackgroundWriter`), so the model never waits for output work
(`sources.py` opens and decodes, `records.py` writes the row);
`commit.OutputCommit` stages and commits the files. Only the durable manifest
row written last means done, so a crash at any point leaves nothing that
looks finished, and a rerun redoes the video from the start with identical
results.

Every failure the actor survives (a corrupt file, a missing key) becomes a
failed row with its reason. Failures it does not survive (out of memory, a
decoder crash) kill the actor; the scheduler replaces it and counts the
attempt (`scheduler.py`).
"""

from __future__ import annotations

import math
import os
import threading
import time
import traceback
from collections.abc import Iterator
from typing import Any

import ray

from vda.model.checkpoint import CheckpointError
from vda.model.inference import WindowConfig
from vda.model.precision import pick_device

from ..core.config import build
from ..storage import exists, join, write_bytes
from ..video import DepthOutputs, VideoDecodeError
from ..video.process import depth_for_video
from ..weights import read_weights
from . import segments
from .activity import Activity, ActorActivity
from .commit import OutputCommit, record_failure
from .config import InferConfig
from .lease import LeaseLost
from .messages import (
    Fenced,
    Finished,
    Ran,
    Result,
    SegmentFailed,
    SegmentStored,
    Split,
    Unit,
)
from .records import base_row, committed_row, finish_row, video_metadata
from .rows import AlreadyCommitted
from .sources import DecodeAhead, OpenedVideo, threaded
from .stitch import stitch
from .turns import ModelTurns


class VideoDepthWorker:
    """A Ray actor (see scheduler.py): one model, a unit of work (or a batch of short
    videos) per call."""

    def __init__(
        self, config: dict[str, Any], checkpoint_sha256: str, lease_owner: str = ""
    ) -> None:
        """Cheap on purpose: the pool tells "not placed" (this has not run) from "loading"."""
        self.config = build(InferConfig, config)
        self.sha = checkpoint_sha256
        self.lease_owner = lease_owner  # every commit checks the job still holds the prefix
        self.node = ray.get_runtime_context().get_node_id()
        self._cancelled: dict[str, threading.Event] = {}
        self.activity = ActorActivity()
        self.units_begun = 0
        self.turns = ModelTurns()  # one model, the units in flight here take turns on it
        self._running = 0  # calls in `process` now
        self._dying = threading.Event()  # fault injection: the next unit is not taken

    def load(self) -> dict[str, Any]:
        """Load the model once: what it is and the node it runs on (the pool waits on this,
        with a deadline, and counts a failure here as a failed start)."""
        import torch

        from vda.model.inference import InferenceConfig, StreamingDepthEngine

        if self.config.fault.fail_start:
            raise RuntimeError("fault injection: this actor cannot start")
        actors = self.config.actors
        torch.set_num_threads(actors.torch_threads or max(1, math.ceil(actors.cpus_per_actor)))
        weights = read_weights(self.config.checkpoint, self.config.s3)  # a name: this node's cache
        if weights.sha256 != self.sha:
            raise CheckpointError(
                f"checkpoint {self.config.checkpoint} changed since the job started "
                f"(sha256 {self.sha[:12]}... then, {weights.sha256[:12]}... on this node)"
            )
        model = weights.load_model()
        device = pick_device(gpu=actors.gpus_per_actor > 0)
        self.engine = StreamingDepthEngine(
            model,
            InferenceConfig(
                input_size=self.config.input_size,
                precision=self.config.precision,
                cache_encoder=self.config.cache_encoder,
                speed=self.config.speed,
            ),
            device=device,
        )
        self.model = {
            "size": model.config.size,
            "metric": model.config.metric,
            "sha256": self.sha,
            "precision": self.engine.precision,
            "device": str(self.engine.device),
            "source": weights.source,
            "license": weights.license,
        }
        return {**self.model, "node": self.node}

    def begin(self, keys: list[str]) -> list[str]:
        """Sent right before each call, in the same queue: its answer proves the actor was
        alive and took the call's units, so a death after it is theirs and a death before
        it is not (an actor that died idle charges nothing)."""
        every = self.config.fault.die_idle_every
        if every and self.units_begun >= every:
            self._die_idle()
        self.units_begun += len(keys)
        return keys

    def process(self, units: list[Unit]) -> list[Ran]:
        """One unit, or several short videos one after another (`batching.py`), each with
        its own commit and row; a fenced unit ends the call (the job stops)."""
        while self._dying.is_set():  # fault injection: held until the actor exits
            time.sleep(1)
        done: list[Ran] = []
        self._running += 1
        try:
            for unit in units:
                self._maybe_raise(unit.video_id)
                start = time.perf_counter()
                result = self._unit(unit)
                done.append(Ran(result, time.perf_counter() - start))
                if isinstance(result, Fenced):
                    break
        finally:
            self._running -= 1
        return done

    def _unit(self, unit: Unit) -> Result:
        activity = self.activity.begin(unit.key)
        try:
            if unit.is_segment:
                return self._segment(unit, activity)
            return self._video(unit, activity)
        except Exception as error:  # outside a video's own guard (a full /tmp): this unit's
            why = f"{type(error).__name__}: {error}"  # failure, not its batch's
            print(f"vda infer: {unit.key}: FAILED:\n{traceback.format_exc()}")
            if unit.is_segment:
                return SegmentFailed(why)
            row = base_row(unit, self.config, self.model)
            row.attempts, row.node, row.error = unit.attempt, self.node, why
            row.status = "failed"
            record_failure(self.config.output, row, self.config.s3, self.lease_owner)
            return Finished(row)
        finally:
            self.activity.end(activity.key)

    @ray.method(concurrency_group="control")
    def activity_report(self) -> list[dict[str, Any]]:
        """What runs here and when it last moved (the driver's stall deadline); answered by
        the control thread, so a unit blocked in a read does not block the answer."""
        return self.activity.snapshot()

    # Stitches run in threads of their own beside `process`: they use the CPUs this actor
    # already holds, so a pool that takes every CPU of the cluster cannot starve them.
    @ray.method(concurrency_group="stitch")
    def stitch(self, unit: Unit, count: int, model: dict[str, Any]) -> Result:
        cancelled = self._cancelled.setdefault(unit.video_id, threading.Event())
        activity = self.activity.begin(f"stitch:{unit.video_id}")
        try:
            return stitch(
                self.config,
                unit,
                count,
                model,
                self.node,
                cancelled.is_set,
                activity=activity,
                lease_owner=self.lease_owner,
            )
        finally:
            self._cancelled.pop(unit.video_id, None)
            self.activity.end(activity.key)

    @ray.method(concurrency_group="control")
    def cancel_stitch(self, video_id: str) -> None:
        """A segment failed for good: the stitch waiting for it gives up (Ray cannot
        interrupt a running actor task, so the stitch checks this flag as it waits)."""
        self._cancelled.setdefault(video_id, threading.Event()).set()

    # -- a whole video ---------------------------------------------------------
    def _video(self, unit: Unit, activity: Activity) -> Result:
        config = self.config
        video, video_id = unit.video, unit.video_id
        row = base_row(unit, config, self.model)
        row.attempts, row.node = unit.attempt, self.node
        commit = OutputCommit(config.output, video_id, config.s3, self.lease_owner)
        start = time.perf_counter()
        try:
            retried = unit.attempt > 1 or unit.uncharged > 0
            if retried and (done := committed_row(config, video_id)) is not None:
                return Finished(done)  # died after its commit: not redone
            self._maybe_crash(video_id)
            if config.fault.null_model:  # the job around the model, nothing else
                row.status = "done"
                activity.step("commit")
                commit.commit(row, activity.step)
                return Finished(row)
            activity.step("open")
            with OpenedVideo(video, config) as reader:
                plan = segments.plan_segments(
                    reader.frame_count_estimate, WindowConfig(), config.split.segment_frames
                )
                if plan and not config.scene_cuts.enabled:  # a cut restarts the chain: unsplit
                    key = segments.plan_key(
                        segments.plan_settings(config, video, row.checkpoint_sha256)
                    )
                    return Split(key, plan)
                outputs = DepthOutputs(
                    commit.local,
                    reader.info,
                    config.outputs,
                    metric=self.model["metric"],
                    on_file_done=commit.upload,
                )
                with (
                    DecodeAhead(reader.frames(), config.decode_prefetch) as decoded,
                    self.turns.turn(activity) as hand_on,
                ):
                    ran: list = []  # the model's alignments, taken as it is handed on

                    start = time.perf_counter()  # its seconds: from its turn on the model

                    def model_done() -> None:
                        ran.append(self.engine.alignments)
                        hand_on()
                        activity.step("write")

                    produced = depth_for_video(
                        self.engine,
                        activity.frames(self._maybe_die(iter(decoded))),
                        outputs,
                        metadata=lambda: video_metadata(config, self.model, ran[0]),
                        background=config.writer.background,
                        queue_frames=config.writer.queue_frames,
                        scene_cuts=config.scene_cuts,
                        model_done=model_done,
                    )
                info = reader.info
            activity.step("commit")
            finish_row(row, produced, info, ran[0], time.perf_counter() - start)
            commit.commit(row, activity.step)
        except LeaseLost as error:  # fenced: no row, the driver stops the job
            return Fenced(str(error))
        except AlreadyCommitted:  # another attempt committed it first: that row stands
            return Finished(committed_row(config, video_id))
        except VideoDecodeError as error:
            row.status, row.error = "failed", str(error)
        except Exception as error:  # any other per-video failure: record it, finish the rest
            row.status, row.error = "failed", f"{type(error).__name__}: {error}"
            print(f"vda infer: {video_id}: FAILED:\n{traceback.format_exc()}")
        finally:
            commit.cleanup()
        if row.status == "failed":
            row.seconds = time.perf_counter() - start
            record_failure(config.output, row, config.s3, self.lease_owner)
        return Finished(row)

    # -- one segment of a long video -------------------------------------------
    def _segment(self, unit: Unit, activity: Activity) -> Result:
        config = self.config
        video, video_id = unit.video, unit.video_id
        try:
            prefix = segments.segment_prefix(config.output, video_id, unit.plan, unit.segment)
            if unit.attempt > 1 or unit.uncharged > 0:  # died after storing it: not redone
                record = segments.read_record(
                    config.output, video_id, unit.plan, unit.segment, config.s3
                )
                if record is not None:
                    return SegmentStored(record)
            self._maybe_crash(video_id, unit.segment)

            def reader():
                activity.step("open")
                opened = OpenedVideo(video, config)
                # decoding up to a segment's first frame can take minutes: it is progress
                opened.on_skip(lambda: activity.step("seek"))
                return opened

            with self.turns.turn(activity):  # a segment holds the model from open to store
                record = segments.run_segment(
                    self.engine,
                    reader,
                    unit.first,
                    unit.stop,
                    prefix,
                    config.s3,
                    seek=config.split.seek,
                    frames=lambda frames: activity.frames(
                        self._maybe_die(threaded(frames, config.decode_prefetch))
                    ),
                    attempt=unit.attempt,
                )
            return SegmentStored(record)
        except Exception as error:
            message = (
                str(error)
                if isinstance(error, VideoDecodeError)
                else f"{type(error).__name__}: {error}"
            )
            return SegmentFailed(message)

    # -- test hooks --------------------------------------------------------------
    def _die_idle(self) -> None:
        """Exit once the units running beside this `begin` have answered: idle, the next
        unit not taken."""
        self._dying.set()
        while self._running:
            time.sleep(0.05)
        time.sleep(0.5)  # their answers leave the process
        print("fault injection: actor dies idle, before its next unit", flush=True)
        os._exit(1)

    def _maybe_crash(self, video_id: str, segment: int | None = None) -> None:
        poison = self.config.fault.crash_videos
        if video_id in poison or (segment is not None and f"{video_id}#{segment}" in poison):
            print(f"fault injection: {video_id} kills its actor", flush=True)
            os._exit(1)

    def _maybe_raise(self, video_id: str) -> None:
        if video_id in self.config.fault.raise_videos:
            raise RuntimeError(f"fault injection: {video_id} raises outside its guard")

    def _maybe_die(self, frames: Iterator[Any]) -> Iterator[Any]:
        limit, delay = self.config.fault.exit_after_frames, self.config.fault.frame_delay_s
        if limit is None and not delay:
            yield from frames
            return
        marker = join(self.config.output, "_fault_injected")
        for count, frame in enumerate(frames):
            time.sleep(delay)
            if count == limit and not exists(marker, self.config.s3):
                write_bytes(marker, b"1", self.config.s3)
                print(f"fault injection: actor exits after {count} frames", flush=True)
                os._exit(1)
            yield frame
