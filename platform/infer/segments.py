"""Long videos split into segments of whole windows, run on several actors, stitched in order.

Why this is exact: the network input of every window depends only on frames
(frame 0, the frame `key_offset` before the window, its own frames), never on
earlier outputs (`StreamingDepthEngine.raw_windows`). Only the scale/shift
chain and the blending of shared frames are sequential (`WindowAligner`), and
they need nothing but the raw windows, in order. So:

1. a segment is windows [first, stop) of one video; an actor seeks to frame
   `start(first) - key_offset` (and reads frame 0), runs the network on its
   windows and stores each raw window at the network's resolution (float32,
   uncompressed: the stitch must see exactly what the network produced) under
   `<output>/_segments/<video>/<plan>/seg_NNNNN/`, with `_DONE.json` last;
2. one ordered pass (`stitch`, a CPU task started with the segments) takes
   the segments' records in order as they land, feeds their raw windows
   through the same `WindowAligner` the single engine uses, writes the
   outputs through the same writers and commits the video after the last
   one: the stitch runs beside the segments, not after them.

Key frame 0 and the alignment chain are therefore the single engine's own.
The plan key hashes everything that changes a raw window (video, checkpoint,
input size, precision, window geometry, decode options, segment size), so a
rerun reuses the segments that are done and redoes only the missing ones; a
different setting never mixes with them. The last segment is open-ended: a
container that under-counts its frames still gets every frame.

Storage cost while a video is in flight: 32 float32 maps at the network's
resolution (518 on the short side) per 22 frames, e.g. about 61 MB per window
for 16:9 video, or 2.8 MB a frame; the folder is deleted after the commit. The
stitch resizes to the frame size on CPU: on a GPU node that is the one step
not computed where the single engine computes it (float32 bilinear
interpolation either way, so they agree to rounding).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from typing import Any

import numpy as np
import torch

from vda.model.inference import (
    PaddedStream,
    RawWindow,
    StreamingDepthEngine,
    WindowAligner,
    WindowConfig,
)

from ..storage import S3Settings, StorageError, is_missing, join, read_bytes, write_bytes
from ..storage.objects import delete
from ..video import SeekMismatch, VideoReader
from ..video.process import BackgroundWriter

DONE = "_DONE.json"


def plan_segments(
    frames: int | None, window: WindowConfig, segment_frames: int
) -> list[tuple[int, int | None]]:
    """[(first window, stop window or None for the open-ended last)], or [] for no split.

    A segment holds whole windows: at least one, `segment_frames // stride`
    in general. Videos of unknown length or not longer than `segment_frames`
    are not split.
    """
    if segment_frames <= 0 or not frames or frames <= segment_frames:
        return []
    per = max(1, segment_frames // window.stride)
    total = window.window_count(frames)
    if total <= per:
        return []
    firsts = list(range(0, total, per))
    return [(f, firsts[i + 1] if i + 1 < len(firsts) else None) for i, f in enumerate(firsts)]


def plan_key(settings: dict[str, Any]) -> str:
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def segments_root(output: str, video_id: str) -> str:
    return join(output, "_segments", video_id)


def segment_prefix(output: str, video_id: str, plan: str, segment: int) -> str:
    return join(segments_root(output, video_id), plan, f"seg_{segment:05d}")


def encode_window(raw: RawWindow) -> bytes:
    buffer = io.BytesIO()
    np.savez(
        buffer,
        depth=raw.depth.numpy().astype(np.float32, copy=False),
        slot_frames=np.asarray(raw.slot_frames, dtype=np.int64),
        index=np.int64(raw.index),
        frame_size=np.asarray(raw.frame_size or raw.depth.shape[-2:], dtype=np.int64),
    )
    return buffer.getvalue()


def decode_window(data: bytes) -> RawWindow:
    with np.load(io.BytesIO(data)) as arrays:
        return RawWindow(
            index=int(arrays["index"]),
            slot_frames=arrays["slot_frames"].tolist(),
            depth=torch.from_numpy(arrays["depth"].copy()),
            frame_size=tuple(arrays["frame_size"].tolist()),
        )


def run_segment(
    engine: StreamingDepthEngine,
    open_reader: Callable[[], VideoReader],
    first: int,
    stop: int | None,
    prefix: str,
    settings: S3Settings | None = None,
    seek: bool = True,
    queue_windows: int = 2,
    frames: Callable[[Iterator], Iterator] = lambda it: it,
    attempt: int = 1,
) -> dict[str, Any]:
    """Run the network on windows [first, stop) and store them under `prefix`.

    Returns the `_DONE.json` record: the windows stored and, when this
    segment reached the end of the video, its length in frames. Uploads run
    on a thread beside the model (`queue_windows` bound the memory).
    """
    w = engine.config.window
    started = time.perf_counter()
    delete(prefix, settings)  # a dead attempt's windows
    from_frame = max(0, w.start(first) - w.key_offset) if first else 0
    store = functools.partial(
        _windows_to_storage, engine, open_reader, first, stop, prefix, settings
    )
    try:
        record = store(seek, from_frame, queue_windows, frames)
    except SeekMismatch:  # variable frame rate: number frames by decoding from the start
        record = store(False, from_frame, queue_windows, frames)
    record["attempt"] = attempt
    record["seconds"] = time.perf_counter() - started  # the stitch sums these into the row
    write_bytes(join(prefix, DONE), json.dumps(record).encode(), settings)
    return record


def _windows_to_storage(
    engine, open_reader, first, stop, prefix, settings, seek, from_frame, queue_windows, frames
) -> dict[str, Any]:
    stored: list[int] = []

    def store(raw: RawWindow) -> None:
        write_bytes(join(prefix, f"w_{raw.index:07d}.npz"), encode_window(raw), settings)
        stored.append(raw.index)

    with open_reader() as reader:
        stream = PaddedStream(frames(reader.indexed_frames(from_frame, seek=seek)))
        writer = BackgroundWriter(store, queue_windows)
        try:
            for raw in engine.raw_windows(stream, first, stop, native=True):
                writer.write(raw)
        finally:
            writer.join()
    return {
        "first": first,
        "stop": stop,
        "windows": stored,
        "length": known_length(stream, from_frame),
    }


def known_length(stream: PaddedStream, from_frame: int) -> int | None:
    """The video's length if this segment's stream proved it, else None.

    A segment's stream holds frame 0 and the frames from `from_frame` on; if
    none of the latter exist (the plan over-estimated the video), the stream
    ended after frame 0, which says nothing about the length.
    """
    if stream.length is None or (from_frame > 1 and stream.length <= from_frame):
        return None
    return stream.length


def read_record(
    output: str, video_id: str, plan: str, segment: int, settings: S3Settings | None = None
) -> dict[str, Any] | None:
    """A segment's `_DONE.json` record, or None while the segment is not done.

    Any other storage failure (denied, throttled, unreachable) raises: a
    caller that polls must see it rather than wait on it forever.
    """
    uri = join(segment_prefix(output, video_id, plan, segment), DONE)
    try:
        return json.loads(read_bytes(uri, settings))
    except StorageError as error:
        if is_missing(error):
            return None
        raise
    except ValueError:  # written whole or not at all (write_bytes): a foreign file, redo it
        return None


def read_records(
    output: str, video_id: str, plan: str, count: int, settings: S3Settings | None = None
) -> list[dict[str, Any] | None]:
    return [read_record(output, video_id, plan, i, settings) for i in range(count)]


def stitched_frames(
    records: Iterable[dict[str, Any]],
    load: Callable[[int, int], RawWindow],
    aligner: WindowAligner,
) -> Iterator[tuple[int, np.ndarray]]:
    """Final (frame, depth) pairs of a split video, from its segments' records in order.

    Streaming: a segment's windows are aligned as soon as its record arrives,
    so the stitch runs beside the segments still computing, not after them. A
    frame leaves once it is known to be real: window k runs only if frame
    start(k) exists, which bounds the length from below; the segment that
    reached the end says the length exactly, and padding is dropped then.
    `load(segment, window)` reads a stored raw window.
    """
    window = aligner.window
    length: int | None = None
    bound = 0
    expected = 0
    held: list[tuple[int, torch.Tensor]] = []

    def release():
        limit = length if length is not None else bound
        nonlocal held
        ready = [(i, d) for i, d in held if i < limit]
        held = [(i, d) for i, d in held if i >= limit]
        return ready

    for segment, record in enumerate(records):
        if record["length"] is not None:
            if length is not None and length != record["length"]:
                raise RuntimeError(f"segments disagree on the video length: {length}, {record}")
            length = record["length"]
        for k in record["windows"]:
            if k != expected:
                raise RuntimeError(f"segment {segment} holds window {k}, window {expected} was due")
            expected += 1
            bound = max(bound, window.start(k) + 1)
            held += aligner.push(load(segment, k))
            for index, depth in release():
                yield index, depth.numpy()
    if length is None:
        raise RuntimeError("no segment reached the end of the video")
    if expected != window.window_count(length):
        raise RuntimeError(
            f"segments hold {expected} windows, the video needs {window.window_count(length)}"
        )
    held += aligner.finish()
    for index, depth in release():
        yield index, depth.numpy()


def window_loader(
    output: str, video_id: str, plan: str, settings: S3Settings | None = None
) -> Callable[[int, int], RawWindow]:
    def load(segment: int, k: int) -> RawWindow:
        uri = join(segment_prefix(output, video_id, plan, segment), f"w_{k:07d}.npz")
        return decode_window(read_bytes(uri, settings)).at_frame_size()

    return load


def drop_segments(output: str, video_id: str, settings: S3Settings | None = None) -> None:
    delete(segments_root(output, video_id), settings)


def plan_settings(config: Any, video: str, checkpoint_sha256: str) -> dict[str, Any]:
    """What a raw window depends on: any change gives another plan key."""
    return {
        "video": video,
        "checkpoint": checkpoint_sha256,
        "input_size": config.input_size,
        "precision": config.precision,
        "decode": asdict(config.decode),
        "segment_frames": config.split.segment_frames,
        "window": asdict(WindowConfig()),
    }
