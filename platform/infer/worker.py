"""The actor that turns units of work into committed outputs, and the stitch of split videos.

Each actor loads the model once. A unit is a whole video or one segment of a
long one (`segments.py`). Per video: frames stream from object storage (a
seekable ranged-GET stream; PyAV reads it directly, nothing is downloaded
whole) through a decode thread into the streaming engine; the writers
(compression, H.264, uploads) run on a thread of their own beside the model
(`video.process.BackgroundWriter`), so the model never waits for output work;
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

import io
import math
import os
import queue
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import ray

from vda.model.inference import WindowAligner, WindowConfig

from ..core.config import build
from ..storage import exists, join, list_files, open_input, read_bytes, write_bytes
from ..video import DepthOutputs, VideoDecodeError, open_video
from ..video.process import VideoResult, depth_for_video, write_depths
from ..video.sequence import (
    IMAGE_SUFFIXES,
    SIDECAR,
    ImageSequenceReader,
    decode_image,
    group_sequences,
    sidecar_fps,
)
from . import segments
from .commit import OutputCommit, record_failure
from .config import InferConfig
from .manifest import ManifestRow, read_row
from .quality import signals


def threaded(frames: Iterator[Any], prefetch: int) -> Iterator[Any]:
    """Decode on a background thread, `prefetch` frames ahead of the model."""
    buffer: queue.Queue = queue.Queue(maxsize=max(1, prefetch))
    done = object()
    stop = threading.Event()

    def produce() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    try:
                        buffer.put(frame, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as error:  # handed to the consumer
            buffer.put(error)

    thread = threading.Thread(target=produce, daemon=True, name="decode")
    thread.start()
    try:
        while True:
            item = buffer.get()
            if item is done:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()


def video_metadata(config: InferConfig, model: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """What ran, for metadata.json: the model, its checkpoint and the settings in force."""
    return {
        "model_size": model["size"],
        "metric": model["metric"],
        "checkpoint": config.checkpoint,
        "checkpoint_sha256": model["sha256"],
        "input_size": config.input_size,
        "precision": model["precision"],  # what was computed in, not what was asked for
        "device": model["device"],
        "decode": {
            "max_res": config.decode.max_res,
            "target_fps": config.decode.target_fps,
            "max_len": config.decode.max_len,
        },
        **extra,
    }


def base_row(unit: dict[str, Any], config: InferConfig, model: dict[str, Any]) -> ManifestRow:
    return ManifestRow(
        video=unit["video"],
        video_id=unit["video_id"],
        output=join(config.output, unit["video_id"]),
        model_size=model["size"],
        checkpoint_sha256=model["sha256"],
        precision=model["precision"],
    )


def finish_row(row: ManifestRow, produced: VideoResult, info, alignments, seconds: float) -> None:
    row.status = "done"
    row.frames = produced.frames
    row.fps, row.width, row.height = info.fps, info.width, info.height
    row.seconds = seconds
    row.frames_per_second = produced.frames / seconds if seconds > 0 else 0.0
    row.scene_cuts = list(produced.scene_cuts)
    if produced.shot_alignments is not None:  # every shot's windows, not the last shot's
        alignments = produced.shot_alignments
    for key, value in signals(alignments, produced.counts).items():
        setattr(row, key, value)


class VideoDepthWorker:
    """A Ray actor (see scheduler.py): one model, one unit of work per call."""

    def __init__(self, config: dict[str, Any], checkpoint_sha256: str) -> None:
        """Cheap on purpose: the pool tells "not placed" (this has not run) from "loading"."""
        self.config = build(InferConfig, config)
        self.sha = checkpoint_sha256
        self.node = ray.get_runtime_context().get_node_id()
        self._cancelled: dict[str, threading.Event] = {}

    def load(self) -> dict[str, Any]:
        """Load the model once: what it is and the node it runs on (the pool waits on this,
        with a deadline, and counts a failure here as a failed start)."""
        import torch

        from vda.model import load_checkpoint
        from vda.model.inference import InferenceConfig, StreamingDepthEngine

        if self.config.fault.fail_start:
            raise RuntimeError("fault injection: this actor cannot start")
        actors = self.config.actors
        torch.set_num_threads(actors.torch_threads or max(1, math.ceil(actors.cpus_per_actor)))
        with open_input(self.config.checkpoint, self.config.s3) as handle:
            data = handle.read()
        stream = io.BytesIO(data)
        stream.name = self.config.checkpoint  # a `metric_*` name marks a metric checkpoint
        model = load_checkpoint(stream)
        device = "cuda" if torch.cuda.is_available() and actors.gpus_per_actor else "cpu"
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
        }
        return {**self.model, "node": self.node}

    def process(self, unit: dict[str, Any]) -> dict[str, Any]:
        if unit["kind"] == "segment":
            return self._segment(unit)
        return self._video(unit)

    # Stitches run in threads of their own beside `process`: they use the CPUs this actor
    # already holds, so a pool that takes every CPU of the cluster cannot starve them.
    @ray.method(concurrency_group="stitch")
    def stitch(self, unit: dict[str, Any], count: int, model: dict[str, Any]) -> dict[str, Any]:
        cancelled = self._cancelled.setdefault(unit["video_id"], threading.Event())
        try:
            return stitch(self.config, unit, count, model, self.node, cancelled.is_set)
        finally:
            self._cancelled.pop(unit["video_id"], None)

    @ray.method(concurrency_group="control")
    def cancel_stitch(self, video_id: str) -> None:
        """A segment failed for good: the stitch waiting for it gives up (Ray cannot
        interrupt a running actor task, so the stitch checks this flag as it waits)."""
        self._cancelled.setdefault(video_id, threading.Event()).set()

    # -- a whole video ---------------------------------------------------------
    def _video(self, unit: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        video, video_id = unit["video"], unit["video_id"]
        row = base_row(unit, config, self.model)
        row.attempts, row.node = unit.get("attempt", 1), self.node
        commit = OutputCommit(config.output, video_id, config.s3)
        start = time.perf_counter()
        try:
            if row.attempts > 1 and (done := _committed(config, video_id)) is not None:
                return {"kind": "row", "row": done.to_dict()}  # died after its commit: not redone
            self._maybe_crash(video_id)
            with _Opened(video, config) as reader:
                plan = segments.plan_segments(
                    reader.frame_count_estimate, WindowConfig(), config.split.segment_frames
                )
                if plan and not config.scene_cuts.enabled:  # a cut restarts the chain: unsplit
                    key = segments.plan_key(
                        segments.plan_settings(config, video, row.checkpoint_sha256)
                    )
                    return {"kind": "split", "segments": plan, "plan": key, "model": self.model}
                outputs = DepthOutputs(
                    commit.local,
                    reader.info,
                    config.outputs,
                    metric=self.model["metric"],
                    on_file_done=commit.upload,
                )
                produced = depth_for_video(
                    self.engine,
                    self._maybe_die(threaded(reader.frames(), config.decode_prefetch)),
                    outputs,
                    metadata=lambda: video_metadata(
                        config, self.model, alignments=_alignments(self.engine.alignments)
                    ),
                    background=config.writer.background,
                    queue_frames=config.writer.queue_frames,
                    scene_cuts=config.scene_cuts,
                )
                info = reader.info
            finish_row(row, produced, info, self.engine.alignments, time.perf_counter() - start)
            commit.commit(row)
        except VideoDecodeError as error:
            row.status, row.error = "failed", str(error)
        except Exception as error:  # any other per-video failure: record it, finish the rest
            row.status, row.error = "failed", f"{type(error).__name__}: {error}"
            print(f"vda infer: {video_id}: FAILED:\n{traceback.format_exc()}")
        finally:
            commit.cleanup()
        if row.status == "failed":
            row.seconds = time.perf_counter() - start
            record_failure(config.output, row, config.s3)
        return {"kind": "row", "row": row.to_dict()}

    # -- one segment of a long video -------------------------------------------
    def _segment(self, unit: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        video, video_id = unit["video"], unit["video_id"]
        try:
            prefix = segments.segment_prefix(config.output, video_id, unit["plan"], unit["segment"])
            if unit.get("attempt", 1) > 1:  # died after storing it: not redone
                record = segments.read_record(
                    config.output, video_id, unit["plan"], unit["segment"], config.s3
                )
                if record is not None:
                    return {"kind": "segment", "record": record, "model": self.model}
            self._maybe_crash(video_id, unit["segment"])

            def reader():
                return _Opened(video, config)

            record = segments.run_segment(
                self.engine,
                reader,
                unit["first"],
                unit["stop"],
                prefix,
                config.s3,
                seek=config.split.seek,
                frames=lambda frames: self._maybe_die(threaded(frames, config.decode_prefetch)),
                attempt=unit.get("attempt", 1),
            )
            return {"kind": "segment", "record": record, "model": self.model}
        except Exception as error:
            message = (
                str(error)
                if isinstance(error, VideoDecodeError)
                else f"{type(error).__name__}: {error}"
            )
            return {"kind": "segment_failed", "error": message, "model": self.model}

    # -- test hooks --------------------------------------------------------------
    def _maybe_crash(self, video_id: str, segment: int | None = None) -> None:
        poison = self.config.fault.crash_videos
        if video_id in poison or (segment is not None and f"{video_id}#{segment}" in poison):
            print(f"fault injection: {video_id} kills its actor", flush=True)
            os._exit(1)

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


class _Opened:
    """A video opened from storage: a file streamed by ranged reads, or, for a URI ending
    in "/", an image sequence read image by image (the folder's direct children)."""

    def __init__(self, video: str, config: InferConfig) -> None:
        self._stream = None
        if video.endswith("/"):
            self._reader = _open_sequence(video, config)
            return
        self._stream = open_input(video, config.s3)
        try:
            self._reader = open_video(self._stream, config.decode, name=video)
        except BaseException:
            self._stream.close()
            raise

    def __enter__(self):
        return self._reader

    def __exit__(self, *exc: object) -> None:
        self._reader.close()
        if self._stream is not None:
            self._stream.close()


def _open_sequence(folder: str, config: InferConfig) -> ImageSequenceReader:
    files = [
        uri
        for uri in list_files(folder, IMAGE_SUFFIXES, config.s3)
        if uri.rsplit("/", 1)[0] + "/" == folder
    ]
    files = group_sequences(files).get(folder, [])
    sidecar = join(folder, SIDECAR)
    data = read_bytes(sidecar, config.s3) if exists(sidecar, config.s3) else None
    fps = config.sequence_fps or sidecar_fps(data, sidecar)
    return ImageSequenceReader(
        files, config.decode, name=folder, fps=fps,
        load=lambda uri: decode_image(read_bytes(uri, config.s3), uri),
    )  # fmt: skip


def _committed(config: InferConfig, video_id: str) -> ManifestRow | None:
    row = read_row(config.output, video_id, config.s3)
    return row if row is not None and row.status == "done" else None


def _alignments(alignments) -> list[dict[str, float]]:
    """Per-window fit, as `vda depth` writes it too: a split video's must equal its single run's."""
    return [asdict(a) for a in alignments]


def stitch(
    config: InferConfig,
    unit: dict[str, Any],
    count: int,
    model: dict,
    node: str = "",
    cancelled: Callable[[], bool] = lambda: False,
    poll_s: float = 0.5,
) -> dict[str, Any]:
    """The ordered pass over a split video: align, blend, write and commit, as segments land.

    It runs in a thread of a pool actor beside the segments (the model is not
    needed: only the windows the segments store, the video's header, and its
    frames for side-by-side), waiting for each segment's record in turn; it
    gives up when `cancelled()` (a segment failed for good). A retry after its
    actor died finds the video's committed row, if it got that far, and
    returns it: nothing is written twice.
    """
    video, video_id, plan = unit["video"], unit["video_id"], unit["plan"]
    if (committed := _committed(config, video_id)) is not None:
        return {"kind": "row", "row": committed.to_dict()}
    row = base_row(unit, config, model)
    row.segments, row.node = count, node
    commit = OutputCommit(config.output, video_id, config.s3)
    start = time.perf_counter()
    records: list[dict[str, Any]] = []

    def in_order() -> Iterator[dict[str, Any]]:
        for segment in range(count):
            while (
                record := segments.read_record(config.output, video_id, plan, segment, config.s3)
            ) is None:
                if cancelled():
                    raise StitchCancelled(f"segment {segment} failed")
                time.sleep(poll_s)
            records.append(record)
            yield record

    try:
        aligner = WindowAligner(WindowConfig(), metric=model["metric"])
        load = segments.window_loader(config.output, video_id, plan, config.s3)
        with _Opened(video, config) as reader:
            outputs = DepthOutputs(
                commit.local, reader.info, config.outputs, metric=model["metric"],
                on_file_done=commit.upload,
            )  # fmt: skip
            keep_rgb = config.outputs.side_by_side or config.outputs.ply  # PLY colours
            rgb = _frame_lookup(reader) if keep_rgb else None
            produced = write_depths(
                segments.stitched_frames(in_order(), load, aligner),
                outputs,
                metadata=lambda: video_metadata(
                    config, model, alignments=_alignments(aligner.alignments), segments=count
                ),
                rgb=rgb,
                background=config.writer.background,
                queue_frames=config.writer.queue_frames,
            )
            info = reader.info
        # the row's seconds: the segments' compute plus the stitch's tail after the last one
        compute = sum(r.get("seconds", 0.0) for r in records)
        finish_row(row, produced, info, aligner.alignments, compute)
        row.attempts = max(r.get("attempt", 1) for r in records)
        commit.commit(row)
        segments.drop_segments(config.output, video_id, config.s3)
    except StitchCancelled:
        return {"kind": "cancelled"}
    except Exception as error:
        row.status, row.error = "failed", f"stitch: {type(error).__name__}: {error}"
        row.seconds = time.perf_counter() - start
        record_failure(config.output, row, config.s3)
    finally:
        commit.cleanup()
    return {"kind": "row", "row": row.to_dict()}


class StitchCancelled(Exception):
    """The scheduler cancelled a stitch: one of its segments failed for good."""


def _frame_lookup(reader):
    frames = enumerate(reader.frames())

    def rgb(index: int) -> np.ndarray | None:
        for position, frame in frames:
            if position == index:
                return frame
        return None

    return rgb
