"""The ordered pass over a split video, run in a thread of a pool actor (see segments.py)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from vda.model.inference import WindowAligner, WindowConfig

from ..storage import retrying
from ..video import DepthOutputs
from ..video.process import write_depths
from . import segments
from .activity import Activity, ActorActivity
from .commit import OutputCommit, record_failure
from .config import InferConfig
from .lease import LeaseLost
from .messages import Cancelled, Fenced, Finished, Result, Unit
from .records import base_row, committed_row, finish_row, video_metadata
from .rows import AlreadyCommitted
from .sources import OpenedVideo


def stitch(
    config: InferConfig,
    unit: Unit,
    count: int,
    model: dict,
    node: str = "",
    cancelled: Callable[[], bool] = lambda: False,
    poll_s: float = 0.5,
    activity: Activity | None = None,
    lease_owner: str = "",
) -> Result:
    """The ordered pass over a split video: align, blend, write and commit, as segments land.

    It runs in a thread of a pool actor beside the segments (the model is not
    needed: only the windows the segments store, the video's header, and its
    frames for side-by-side), waiting for each segment's record in turn; it
    gives up when `cancelled()` (a segment failed for good). A retry after its
    actor died finds the video's committed row, if it got that far, and
    returns it: nothing is written twice.

    Its waits are bounded: waiting for a segment still to come is reported to
    the driver as waiting (`activity`), which the segment's own deadline
    covers; a storage error while reading a record is retried a few times
    with backoff and then fails the video with the error's first line.
    """
    activity = activity or ActorActivity().begin(f"stitch:{unit.video_id}")
    video, video_id, plan = unit.video, unit.video_id, unit.plan
    if (committed := committed_row(config, video_id)) is not None:
        return Finished(committed)
    row = base_row(unit, config, model)
    row.segments, row.node = count, node
    commit = OutputCommit(config.output, video_id, config.s3, lease_owner)
    start = time.perf_counter()
    records: list[dict[str, Any]] = []

    def in_order() -> Iterator[dict[str, Any]]:
        for segment in range(count):
            while (record := _read(segment)) is None:
                if cancelled():
                    raise StitchCancelled(f"segment {segment} failed")
                activity.step(f"wait for segment {segment}", waiting=True)
                time.sleep(poll_s)
            activity.step(f"stitch segment {segment}")
            records.append(record)
            yield record

    def _read(segment: int) -> dict[str, Any] | None:
        return retrying(
            lambda: segments.read_record(config.output, video_id, plan, segment, config.s3),
            f"read segment {segment}'s record",
        )

    try:
        aligner = WindowAligner(WindowConfig(), metric=model["metric"])
        load = segments.window_loader(config.output, video_id, plan, config.s3)
        with OpenedVideo(video, config) as reader:
            outputs = DepthOutputs(
                commit.local,
                reader.info,
                config.outputs,
                metric=model["metric"],
                on_file_done=commit.upload,
            )
            keep_rgb = config.outputs.side_by_side or config.outputs.ply  # PLY colours
            rgb = _frame_lookup(reader) if keep_rgb else None
            produced = write_depths(
                activity.frames(
                    segments.stitched_frames(in_order(), load, aligner), wait="stitch", work="write"
                ),
                outputs,
                metadata=lambda: video_metadata(config, model, aligner.alignments, segments=count),
                rgb=rgb,
                background=config.writer.background,
                queue_frames=config.writer.queue_frames,
            )
            info = reader.info
        # the row's seconds: the segments' compute plus the stitch's tail after the last one
        compute = sum(r.get("seconds", 0.0) for r in records)
        activity.step("commit")
        finish_row(row, produced, info, aligner.alignments, compute)
        row.attempts = max(r.get("attempt", 1) for r in records)
        commit.commit(row, activity.step)
    except StitchCancelled:
        return Cancelled()
    except LeaseLost as error:  # fenced: no row, the driver stops the job
        return Fenced(str(error))
    except AlreadyCommitted:  # a stitch retried after its commit: that row stands
        return Finished(committed_row(config, video_id))
    except Exception as error:
        row.status, row.error = "failed", f"stitch: {type(error).__name__}: {error}"
        row.seconds = time.perf_counter() - start
        record_failure(config.output, row, config.s3, lease_owner)
    finally:
        commit.cleanup()
    if row.status == "done":  # committed: the segments' windows are no longer needed
        with contextlib.suppress(Exception):  # a leftover folder costs storage, not the video
            segments.drop_segments(config.output, video_id, config.s3)
    return Finished(row)


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
