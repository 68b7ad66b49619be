"""The actor that turns one video into committed outputs.

Each actor loads the model once. Per video: frames stream from object storage
(a seekable ranged-GET stream; PyAV reads it directly, nothing is downloaded
whole) through a decode thread into the streaming engine; every finished
output file is uploaded under `<output>/_tmp/<video>-<attempt>/` and deleted
locally; then the files are moved to `<output>/<video>/` and
`<output>/<video>/_SUCCESS.json` is written last. Only that marker means done,
so a crash at any point leaves nothing that looks finished, and a rerun
redoes the video from the start with identical results.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import queue
import shutil
import tempfile
import threading
import time
import traceback
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from ..core.config import build
from ..storage import (
    commit_object,
    exists,
    join,
    list_files,
    open_input,
    open_output,
    write_bytes,
)
from ..storage.objects import delete
from ..video import DepthOutputs, VideoDecodeError, open_video
from ..video.process import depth_for_video
from .config import InferConfig

SUCCESS = "_SUCCESS.json"
FAILED = "_FAILED.json"


def threaded(frames: Iterator[np.ndarray], prefetch: int) -> Iterator[np.ndarray]:
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


class VideoDepthActor:
    """Ray Data callable class: one row in = one video processed = one manifest row out."""

    def __init__(self, config: dict[str, Any]) -> None:
        import torch

        from vda.model import load_checkpoint
        from vda.model.inference import InferenceConfig, StreamingDepthEngine

        self.config = build(InferConfig, config)
        actors = self.config.actors
        torch.set_num_threads(actors.torch_threads or max(1, math.ceil(actors.cpus_per_actor)))
        data = _read_all(self.config.checkpoint, self.config)
        self.checkpoint_sha256 = hashlib.sha256(data).hexdigest()
        name = self.config.checkpoint.rstrip("/").rsplit("/", 1)[-1]
        metric = name.startswith("metric_") or None
        model = load_checkpoint(io.BytesIO(data), metric=metric)
        device = (
            "cuda" if torch.cuda.is_available() and self.config.actors.gpus_per_actor else "cpu"
        )
        self.engine = StreamingDepthEngine(
            model,
            InferenceConfig(
                input_size=self.config.input_size,
                precision=self.config.precision,
                cache_encoder=self.config.cache_encoder,
            ),
            device=device,
        )
        self.model_config = model.config

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, list]:
        rows = [self.process({k: batch[k][i] for k in batch}) for i in range(len(batch["video"]))]
        return {key: [row[key] for row in rows] for key in rows[0]}

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        config = self.config
        video, video_id = str(row["video"]), str(row["video_id"])
        final = join(config.output, video_id)
        attempt = uuid.uuid4().hex[:8]
        staging = join(config.output, "_tmp", f"{video_id.replace('/', '__')}-{attempt}")
        local = Path(tempfile.mkdtemp(prefix="vda-infer-"))
        result = _row(video, video_id, final, self.checkpoint_sha256, self.model_config.size)
        start = time.perf_counter()
        try:
            uploaded: list[str] = []

            def upload(path: Path) -> None:
                relative = str(path.relative_to(local))
                # streamed (multipart on S3): a depth chunk can be hundreds of MB
                with (
                    path.open("rb") as source,
                    open_output(join(staging, relative), config.s3) as target,
                ):
                    shutil.copyfileobj(source, target, length=8 << 20)
                path.unlink()
                uploaded.append(relative)

            with (
                open_input(video, config.s3) as stream,
                open_video(stream, config.decode, name=video) as reader,
            ):
                outputs = DepthOutputs(
                    local,
                    reader.info,
                    config.outputs,
                    metric=self.model_config.metric,
                    on_file_done=upload,
                )
                frames = self._maybe_die(threaded(reader.frames(), config.decode_prefetch))
                produced = depth_for_video(
                    self.engine,
                    frames,
                    outputs,
                    metadata={
                        "model_size": self.model_config.size,
                        "metric": self.model_config.metric,
                        "checkpoint": config.checkpoint,
                        "checkpoint_sha256": self.checkpoint_sha256,
                        "input_size": config.input_size,
                    },
                )
                info = reader.info
            for relative in uploaded:  # commit: move every file, then the marker last
                commit_object(join(staging, relative), join(final, relative), config.s3)
            summary = {
                "video": video,
                "frames": produced.frames,
                "fps": info.fps,
                "width": info.width,
                "height": info.height,
                "files": uploaded,
                "checkpoint_sha256": self.checkpoint_sha256,
            }
            write_bytes(join(final, SUCCESS), json.dumps(summary, indent=2).encode(), config.s3)
            result.update(
                status="done", frames=produced.frames, fps=info.fps, width=info.width,
                height=info.height, files=uploaded,
            )  # fmt: skip
            print(f"vda infer: {video_id}: {produced.frames} frames in {produced.seconds:.1f} s")
        except VideoDecodeError as error:
            result.update(status="failed", error=str(error))
            print(f"vda infer: {video_id}: FAILED: {error}")
        except Exception as error:  # any other per-video failure: record it, finish the rest
            result.update(status="failed", error=f"{type(error).__name__}: {error}")
            print(f"vda infer: {video_id}: FAILED:\n{traceback.format_exc()}")
        finally:
            shutil.rmtree(local, ignore_errors=True)
            with contextlib.suppress(Exception):  # best effort: a leftover _tmp is harmless
                delete(staging, config.s3)
        if result["status"] == "failed":  # remembered, so a rerun does not redo it
            marker = {"video": video, "error": result["error"]}
            with contextlib.suppress(Exception):
                write_bytes(join(final, FAILED), json.dumps(marker).encode(), config.s3)
        else:
            with contextlib.suppress(Exception):
                delete(join(final, FAILED), config.s3)
        result["seconds"] = time.perf_counter() - start
        return result

    def _maybe_die(self, frames: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        limit = self.config.fault.exit_after_frames
        if limit is None:
            yield from frames
            return
        marker = join(self.config.output, "_fault_injected")
        for index, frame in enumerate(frames):
            if index == limit and not exists(marker, self.config.s3):
                write_bytes(marker, b"1", self.config.s3)
                print(f"fault injection: actor exits after {index} frames", flush=True)
                os._exit(1)
            yield frame


def _read_all(uri: str, config: InferConfig) -> bytes:
    with open_input(uri, config.s3) as handle:
        return handle.read()


def _row(video: str, video_id: str, output: str, sha: str, size: str) -> dict[str, Any]:
    return {
        "video": video,
        "video_id": video_id,
        "status": "failed",
        "error": "",
        "frames": 0,
        "fps": 0.0,
        "width": 0,
        "height": 0,
        "seconds": 0.0,
        "output": output,
        "files": [],
        "model_size": size,
        "checkpoint_sha256": sha,
    }


def marked_videos(config: InferConfig) -> tuple[set[str], set[str]]:
    """(done, failed) video ids, from the _SUCCESS / _FAILED markers under the output prefix."""
    prefix = config.output.rstrip("/") + "/"
    found: dict[str, set[str]] = {SUCCESS: set(), FAILED: set()}
    for uri in list_files(config.output, (SUCCESS, FAILED), config.s3):
        relative = uri[len(prefix) :] if uri.startswith(prefix) else uri
        if relative.startswith("_tmp/"):
            continue
        for name, ids in found.items():
            if relative.endswith(name):
                ids.add(relative[: -len(name)].rstrip("/"))
    return found[SUCCESS], found[FAILED] - found[SUCCESS]
