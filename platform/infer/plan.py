"""What a `vda infer` run will do, decided before any actor starts.

The listing of the input prefix (1,000 keys a request on S3), the done
check from the listing of the durable rows (`rows.py`: the status is in
the key, so no row is read, whatever happened to the last run), and every
check the driver can make without the cluster (the output prefix takes
writes, the checkpoint loads).
`vda infer --plan` stops there and prints what the run would cost, reading
the to-do videos' container headers (no decoding).

Memory: the rows are listed first (one shared object per status) and the
input listing streams past them, so only the units to do are kept, as columns
(`pending.py`): the split cost 264 bytes of peak RSS per listed video with
half of them done when the units were objects (`vda bench plan`, synthetic
keys; the real plan's slope was below what RSS resolves at 10^5). Rows of the earlier layout are read for every such row under the
output, whether its video is still listed or not.
"""

from __future__ import annotations

import math
import os
import random
import statistics
import uuid
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow.compute as pc

from ..core.config import ConfigError
from ..core.progress import duration
from ..storage import (
    StorageError,
    join,
    key_below,
    list_objects,
    open_input,
    read_bytes,
    resolve,
    write_bytes,
)
from ..storage.objects import delete, is_s3
from ..video.decode import VideoDecodeError, probe_header
from ..video.sequence import group_sequences
from ..video.suffixes import FRAME_SUFFIXES
from .compact import merges_of, winners
from .config import InferConfig
from .estimate import Estimate, ratio_estimate
from .messages import Unit
from .pending import Pending
from .rows import listed_statuses, read_row_at, row_uri


@dataclass(frozen=True, slots=True)
class ListedRow:
    """A video's durable row as its listing shows it: its status. Where it is follows from
    the status (`rows.row_uri`); only a row of the earlier layout keeps its URI."""

    status: str  # done | failed
    legacy_uri: str | None = None

    def uri(self, output: str, video_id: str) -> str:
        return self.legacy_uri or row_uri(output, video_id, self.status)


@dataclass
class JobPlan:
    listed: int  # videos listed (their units are not kept: only the ones to do are)
    earlier: dict[str, ListedRow]  # done (or failed, without retry_failed) before: kept
    todo: Pending  # columns, longest first; a Unit is made as one is taken
    checkpoint_sha256: str
    model: dict[str, Any] = field(default_factory=dict)  # size, metric

    def located(self, output: str, status: str | None = None) -> dict[str, tuple[str, str]]:
        """{video id: (status, row URI)} of the earlier rows (of one status): what merging
        them into the manifest needs."""
        return {
            video_id: (row.status, row.uri(output, video_id))
            for video_id, row in self.earlier.items()
            if status is None or row.status == status
        }

    @property
    def failed_before(self) -> int:
        return sum(1 for r in self.earlier.values() if r.status == "failed")

    def summary(self) -> str:
        done = len(self.earlier) - self.failed_before
        return (
            f"{self.listed} videos: {done} already done, {self.failed_before} failed "
            f"before (retry_failed=true retries them), {len(self.todo)} to process"
        )

    def weights_line(self) -> str | None:
        """The released model and its license, said before any work starts."""
        if not self.model.get("license"):
            return None
        return f"checkpoint {self.model['name']} = {self.model['source']}: license {self.model['terms']}"


def plan_job(config: InferConfig, check_writes: bool = True) -> JobPlan:
    """The rows are listed first, so that the input listing streams past them: a video
    already done is counted and dropped as its page arrives, and only the units to do are
    kept (with half an archive done, about half the memory of holding every unit)."""
    sha, model = check_before_start(config, check_writes)
    kept = {"done"} if config.retry_failed else {"done", "failed"}
    listed, earlier, todo = split_listed(_unique(config), listed_rows(config), kept)
    return JobPlan(listed, earlier, todo, sha, model)


def split_listed(
    units: Iterable[Unit], known: dict[str, ListedRow], kept: set[str]
) -> tuple[int, dict[str, ListedRow], Pending]:
    """(videos listed, their kept earlier rows, the units to do) as the units stream in;
    rows of videos no longer listed are left out. `known` is emptied on the way."""
    earlier: dict[str, ListedRow] = {}
    todo = Pending()
    listed = 0
    for unit in units:
        listed += 1
        row = known.pop(unit.video_id, None)
        if row is not None and row.status in kept:
            earlier[unit.video_id] = row
        else:
            todo.append(unit)
    return listed, earlier, todo


_LISTED = {status: ListedRow(status) for status in ("done", "failed")}  # one object each


def listed_rows(config: InferConfig) -> dict[str, ListedRow]:
    """The status of every durable row under the output, from one listing (done beats
    failed; a row of the earlier layout, status inside, is read on its own)."""
    known: dict[str, ListedRow] = {}
    legacy: dict[str, str] = {}
    for video_id, status, uri in listed_statuses(config.output, config.s3):
        if status == "unknown":
            legacy[video_id] = uri
        elif status == "done" or video_id not in known:
            known[video_id] = _LISTED[status]
    with ThreadPoolExecutor(max_workers=max(1, config.lookup_threads)) as pool:
        ids = [v for v in legacy if v not in known]
        for video_id, row in zip(ids, pool.map(lambda v: read_row_at(legacy[v], config.s3), ids)):
            if row is not None:
                known[video_id] = ListedRow(row.status, legacy[video_id])
    return known


def video_id_for(uri: str, prefix: str | None) -> str:
    """A normalised id (the output sub-prefix) from the video's path below the input prefix."""
    return key_below(uri, prefix)


def _unique(config: InferConfig) -> Iterator[Unit]:
    """The videos to consider, as units, as the listing of the input prefix streams in
    (1,000 keys a request on S3), or from a .txt list of URIs."""
    if config.input.endswith(".txt"):
        uris = [line.strip() for line in read_bytes(config.input, config.s3).decode().splitlines()]
        return iter_units(((u, 0, None) for u in uris if u and not u.startswith("#")), None)
    # local listings are absolute paths: ids are taken below the absolute prefix
    prefix = config.input if is_s3(config.input) else resolve(config.input)[1]
    return iter_units(_listed(config), prefix)


def _listed(config: InferConfig) -> Iterator[tuple[str, int, int | None]]:
    """(URI, bytes, frames) per input as the listing streams in, page by page: a file's
    bytes, an image sequence's frame count (each folder of images is one video)."""
    suffixes = tuple(config.suffixes) + (FRAME_SUFFIXES if config.sequences else ())
    images = []
    for item in list_objects(config.input, suffixes, config.s3):
        if item.uri.lower().endswith(tuple(config.suffixes)):
            yield item.uri, item.size, None
        else:
            images.append(item.uri)
    if config.sequences:
        for folder, files in group_sequences(images).items():
            yield folder, 0, len(files)


def iter_units(inputs: Iterable[tuple[str, int, int | None]], prefix: str | None) -> Iterator[Unit]:
    """One unit of work per (URI, bytes, frames), named by its normalised id below the
    prefix, as the inputs stream in; two inputs with one id are an error."""
    seen = set()
    for uri, size, frames in inputs:
        video_id = video_id_for(uri.rstrip("/"), prefix)
        if video_id in seen:
            raise StorageError(f"two inputs map to the same output {video_id!r}; rename one")
        seen.add(video_id)
        yield Unit(uri, video_id, frames=frames, bytes=size)


def check_before_start(config: InferConfig, check_writes: bool = True) -> tuple[str, dict]:
    """Fail before any cluster work on what the driver can see: (checkpoint sha256, model)."""
    from ..weights import read_weights
    from ..weights.hub import is_release_name, published_sha256, released

    probe = join(config.output, "_tmp", f"_probe-{uuid.uuid4().hex[:8]}")
    try:
        if check_writes:
            write_bytes(probe, b"vda infer writes here", config.s3)
            delete(probe, config.s3)
    except StorageError as error:
        raise StorageError(
            f"the output prefix {config.output} does not take writes: {error}"
        ) from error
    if is_release_name(config.checkpoint):  # each actor fetches it into its node's cache
        release = released(config.checkpoint)
        sha = published_sha256(config.checkpoint)
        metric = release.name.startswith("metric-")
        info = {
            "size": release.name.removeprefix("metric-"),
            "metric": metric,
            "name": release.name,
            "source": release.source,
            "license": release.license,
            "terms": release.terms,
        }
    else:
        weights = read_weights(config.checkpoint, config.s3)
        model = weights.load_model()
        sha, info = weights.sha256, {"size": model.config.size, "metric": model.config.metric}
    if config.outputs.ply and not info["metric"]:
        raise ConfigError(
            "outputs.ply: point clouds need metric depth, and "
            f"{config.checkpoint} predicts relative disparity (use a metric checkpoint)"
        )
    return sha, info


def plan_table(
    config: InferConfig, plan: JobPlan, fps: float | None = None, sample: int = 1000
) -> list[str]:
    """`vda infer --plan`: the work ahead, from listings and a sample of container headers.

    What the listing knows is exact (counts, bytes, image sequences' frames);
    frames and hours of video are estimated from `sample` random to-do
    videos' headers (0: every one), scaled by bytes (`estimate.py`), with
    their 95% interval. `fps`: the frames/s one actor achieves; else the
    median of what earlier runs recorded; else the estimate is left out.
    """
    columns = plan.todo.columns
    is_file = pc.is_null(columns["frames"]).to_numpy(zero_copy_only=False)
    files = np.flatnonzero(is_file)  # indices; image sequences' frames are known from listing
    known_frames = int(pc.sum(columns["frames"]).as_py() or 0)
    every = not sample or sample >= len(files)
    picked = files if every else sorted(random.Random(0).sample(files.tolist(), sample))
    chosen = [plan.todo[int(i)] for i in picked]
    headers = _headers(config, chosen)
    readable = [(u, h) for u, h in zip(chosen, headers, strict=True) if h[0] is not None]
    unknown = len(chosen) - len(readable)
    population = len(files) - (unknown if len(chosen) == len(files) else 0)
    todo_bytes = int(columns["bytes"].to_numpy()[is_file].sum())
    sizes = [float(u.bytes) for u, _ in readable]

    def total(values: list[float]) -> Estimate:
        return ratio_estimate(values, sizes, todo_bytes, population)

    frames = total([float(h[0]) for _, h in readable])
    seconds = total([float(h[1] or 0.0) for _, h in readable])
    merges, _ = merges_of(config.output, config.s3)  # the merges only: a GET each
    earlier = winners(merges, plan.located(config.output, "done"), config.s3)
    measured = [v for v in earlier["frames_per_second"].to_pylist() if v > 0]
    rate = fps or (statistics.median(measured) if measured else None)
    source = "given" if fps else ("median of earlier runs" if measured else "")
    lines = [
        f"input      {config.input}",
        f"output     {config.output}",
        f"checkpoint {config.checkpoint} ({plan.model.get('size', '?')}, "
        f"sha256 {plan.checkpoint_sha256[:12]})",
        f"videos     {plan.listed} listed: {len(plan.todo)} to do"
        + (f" ({_gigabytes(todo_bytes)})" if todo_bytes else "")
        + f", {len(plan.earlier) - plan.failed_before} done, {plan.failed_before} failed before",
    ]
    if frames.exact:
        lines.append(
            f"to do      {int(frames.total) + known_frames} frames, "
            f"{duration(seconds.total)} of video"
            + (f" ({unknown} without a readable frame count)" if unknown else "")
        )
    else:
        lines.append(
            f"to do      {_about(frames, known_frames)} frames, {_about_duration(seconds)} of "
            f"video (95% intervals from {frames.sampled} of {len(files)} headers, "
            "scaled by bytes"
            + (f"; {unknown} sampled without a readable frame count)" if unknown else ")")
        )
    if rate:
        hours = frames.scaled(1 / rate / 3600)
        spread = "" if hours.exact else f" ± {_half(hours.half_width, '.2f')}"
        total_hours = hours.total + known_frames / rate / 3600
        lines.append(
            f"estimate   {total_hours:.2f}{spread} actor-hours at {rate:.1f} frames/s per actor "
            f"({source})"
        )
    else:
        lines.append(
            "estimate   unknown: pass --plan-fps (frames/s per actor) or run a sample first"
        )
    return lines


def _half(value: float, spec: str) -> str:
    return "?" if math.isinf(value) else format(value, spec)


def _about(estimate: Estimate, exact_part: int) -> str:
    return f"{estimate.total + exact_part:,.0f} ± {_half(estimate.half_width, ',.0f')}"


def _about_duration(estimate: Estimate) -> str:
    spread = "?" if math.isinf(estimate.half_width) else duration(estimate.half_width)
    return f"{duration(estimate.total)} ± {spread}"


def _gigabytes(size: int) -> str:
    return f"{size / 1e9:,.1f} GB" if size >= 1e8 else f"{size / 1e6:,.1f} MB"


def _headers(config: InferConfig, todo: list[Unit]) -> list[tuple[int | None, float | None]]:
    def one(unit: Unit) -> tuple[int | None, float | None]:
        if unit.frames is not None:  # an image sequence: its listing counted the frames
            return unit.frames, None
        if not is_s3(unit.video) and not os.path.isfile(unit.video):
            return None, None  # a named pipe or a device: reading it could block forever
        try:
            with open_input(unit.video, config.s3) as stream:
                header = probe_header(stream, unit.video)
        except (StorageError, VideoDecodeError):
            return None, None
        return header.frames, header.seconds

    with ThreadPoolExecutor(max_workers=max(1, config.lookup_threads)) as pool:
        return list(pool.map(one, todo))
