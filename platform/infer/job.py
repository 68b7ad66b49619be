"""`vda infer` driver: check, list, skip what is committed, schedule the rest, merge, record.

Resumable by construction: a video is done when its durable manifest row
(`<output>/_manifests/rows/<video>.json`, written after the commit) says so,
and only then; one GET per listed video decides it. A rerun processes only
what is missing (and what failed, with retry_failed=true), and a split
video's finished segments are reused. Everything that can be checked before
Ray starts is: the listing, that the output prefix takes writes, that the
checkpoint reads and loads.

One job owns an output prefix at a time: the run starts by clearing
`_tmp/`, where dead attempts of earlier runs leave staged files.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ..core.config import ConfigError, flatten, to_dict
from ..core.tracking import ensure_experiment, log_metrics, log_params
from ..storage import (
    StorageError,
    exists,
    join,
    key_below,
    list_files,
    open_input,
    read_bytes,
    write_bytes,
)
from ..storage.objects import delete
from ..video.sequence import IMAGE_SUFFIXES, group_sequences
from .config import InferConfig
from .manifest import ManifestRow, manifest_table, read_rows, write_manifest
from .quality import flag_outliers


@dataclass
class InferResult:
    rows: list[ManifestRow]
    manifest: str
    seconds: float
    mlflow_run_id: str | None
    outliers: list[ManifestRow]
    scheduled_seconds: float = 0.0  # actors started, units run, stitches done: the makespan
    startup_seconds: float = 0.0  # of which: until every actor had loaded the model

    def count(self, status: str) -> int:
        """done / failed (this run or before) or skipped (done by an earlier run)."""
        if status == "skipped":
            return sum(1 for r in self.rows if r.status == "done" and not r.processed)
        if status == "done":
            return sum(1 for r in self.rows if r.status == "done" and r.processed)
        return sum(1 for r in self.rows if r.status == status)

    @property
    def frames(self) -> int:
        """Frames processed by this run."""
        return sum(r.frames for r in self.rows if r.status == "done" and r.processed)


def video_id_for(uri: str, prefix: str | None) -> str:
    """A normalised id (the output sub-prefix) from the video's path below the input prefix."""
    return key_below(uri, prefix)


def list_videos(config: InferConfig) -> list[dict[str, str]]:
    if config.input.endswith(".txt"):
        uris = [line.strip() for line in read_bytes(config.input, config.s3).decode().splitlines()]
        uris = [u for u in uris if u and not u.startswith("#")]
        prefix = None
    else:
        uris = list_files(config.input, tuple(config.suffixes), config.s3)
        if config.sequences:  # each folder of images is one video, named by the folder
            images = list_files(config.input, IMAGE_SUFFIXES, config.s3)
            uris += list(group_sequences(images))
        prefix = config.input
    rows, seen = [], set()
    for uri in uris:
        video_id = video_id_for(uri.rstrip("/"), prefix)
        if video_id in seen:
            raise StorageError(f"two inputs map to the same output {video_id!r}; rename one")
        seen.add(video_id)
        rows.append({"video": uri, "video_id": video_id})
    return rows


def check_before_start(config: InferConfig) -> str:
    """Fail before any cluster work on what the driver can see; returns the checkpoint sha256."""
    from vda.model import load_checkpoint
    from vda.model.checkpoint import CheckpointError

    probe = join(config.output, "_tmp", f"_probe-{uuid.uuid4().hex[:8]}")
    try:
        write_bytes(probe, b"vda infer writes here", config.s3)
        delete(probe, config.s3)
    except StorageError as error:
        raise StorageError(
            f"the output prefix {config.output} does not take writes: {error}"
        ) from error
    if not exists(config.checkpoint, config.s3):
        raise StorageError(f"checkpoint {config.checkpoint} does not exist")
    with open_input(config.checkpoint, config.s3) as handle:
        data = handle.read()
    stream = io.BytesIO(data)
    stream.name = config.checkpoint  # a `metric_*` name marks a metric checkpoint
    try:
        model = load_checkpoint(stream)
    except Exception as error:
        raise CheckpointError(f"checkpoint {config.checkpoint} does not load: {error}") from error
    if config.outputs.ply and not model.config.metric:
        raise ConfigError(
            "outputs.ply: point clouds need metric depth, and "
            f"{config.checkpoint} predicts relative disparity (use a metric_* checkpoint)"
        )
    return hashlib.sha256(data).hexdigest()


def run_infer(config: InferConfig, progress=print) -> InferResult:
    import ray

    start = time.perf_counter()
    videos = list_videos(config)  # before Ray: a bad prefix fails at once
    sha = check_before_start(config)
    known = read_rows(
        config.output, [v["video_id"] for v in videos], config.s3, config.lookup_threads
    )
    earlier: dict[str, ManifestRow] = {}
    for video_id, row in known.items():
        if row.status == "done" or (row.status == "failed" and not config.retry_failed):
            row.processed = False
            earlier[video_id] = row
    todo = [v for v in videos if v["video_id"] not in earlier]
    failed_before = sum(1 for r in earlier.values() if r.status == "failed")
    progress(
        f"vda infer: {len(videos)} videos: {len(earlier) - failed_before} already done, "
        f"{failed_before} failed before (retry_failed=true retries them), {len(todo)} to process"
    )
    rows: list[ManifestRow] = []
    if todo:
        from .scheduler import InferScheduler

        if not ray.is_initialized():  # Ray's INFO lines go to its log files, not the terminal
            ray.init(log_to_driver=False, logging_level=logging.WARNING)
        with contextlib.suppress(StorageError):
            delete(join(config.output, "_tmp"), config.s3)  # dead attempts' staging
        scheduled = time.perf_counter()
        scheduler = InferScheduler(config, sha, rows.append, progress)
        scheduler.run(todo)
        scheduled, startup = time.perf_counter() - scheduled, scheduler.startup_s
    else:
        scheduled = startup = 0.0
    by_id = {**earlier, **{r.video_id: r for r in rows}}
    ordered = sorted(by_id.values(), key=lambda r: r.video_id)
    outliers = flag_outliers(ordered)
    manifest = write_manifest(config.output, ordered, config.s3)
    seconds = time.perf_counter() - start
    result = InferResult(ordered, manifest, seconds, None, outliers, scheduled, startup)
    result.mlflow_run_id = _track(config, result)
    return result


def _track(config: InferConfig, result: InferResult) -> str:
    from mlflow.tracking import MlflowClient

    tracking_uri, experiment_id = ensure_experiment(config.mlflow)
    client = MlflowClient(tracking_uri)
    run = client.create_run(experiment_id, run_name="vda-infer", tags={"vda.job": "infer"})
    run_id = run.info.run_id
    log_params(client, run_id, flatten(to_dict(config)))
    log_metrics(
        client,
        run_id,
        {
            "videos_done": result.count("done"),
            "videos_failed": result.count("failed"),
            "videos_skipped": result.count("skipped"),
            "videos_outliers": len(result.outliers),
            "frames": result.frames,
            "seconds": result.seconds,
            "frames_per_second": result.frames / result.seconds if result.seconds else 0.0,
        },
        step=0,
    )
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "manifest.parquet"
        pq.write_table(manifest_table(result.rows), local)
        client.log_artifact(run_id, str(local))
    client.set_terminated(run_id, status="FINISHED" if not result.count("failed") else "FAILED")
    return run_id
