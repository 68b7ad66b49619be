"""`vda infer` driver: list, skip what is committed, process the rest on an actor pool, record.

Resumable by construction: a video is done when `<output>/<video>/_SUCCESS.json`
exists, and only then; the listing skips those, so a rerun processes only what
is missing or failed. The manifest (`<output>/manifest.parquet`, plus a copy
per run under `_manifests/`) has one row per video: done, failed (with the
reason) or skipped.
"""

from __future__ import annotations

import json
import posixpath
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from ..core.config import flatten, to_dict
from ..core.tracking import ensure_experiment, log_metrics, log_params
from ..storage import StorageError, exists, join, list_files, open_output, read_bytes
from .config import InferConfig
from .worker import FAILED, SUCCESS, VideoDepthActor, marked_videos

MANIFEST_SCHEMA = pa.schema(
    [
        ("video", pa.string()),
        ("video_id", pa.string()),
        ("status", pa.string()),
        ("error", pa.string()),
        ("frames", pa.int64()),
        ("fps", pa.float64()),
        ("width", pa.int64()),
        ("height", pa.int64()),
        ("seconds", pa.float64()),
        ("output", pa.string()),
        ("files", pa.list_(pa.string())),
        ("model_size", pa.string()),
        ("checkpoint_sha256", pa.string()),
    ]
)


@dataclass
class InferResult:
    rows: list[dict[str, Any]]
    manifest: str
    seconds: float
    mlflow_run_id: str | None

    def count(self, status: str) -> int:
        return sum(1 for row in self.rows if row["status"] == status)

    @property
    def frames(self) -> int:
        return sum(int(row["frames"]) for row in self.rows if row["status"] == "done")


def video_id_for(uri: str, prefix: str | None) -> str:
    """A normalised id (the output sub-prefix) from the video's path below the input prefix."""
    text = uri
    if prefix and uri.startswith(prefix.rstrip("/") + "/"):
        text = uri[len(prefix.rstrip("/")) + 1 :]
    elif "://" in text:
        text = text.split("://", 1)[1]
    stem = posixpath.splitext(text)[0]
    # the same normalisation as storage keys: no '..', no empty or '.' segments
    return join("", stem).lstrip("/")


def list_videos(config: InferConfig) -> list[dict[str, str]]:
    if config.input.endswith(".txt"):
        uris = [line.strip() for line in read_bytes(config.input, config.s3).decode().splitlines()]
        uris = [u for u in uris if u and not u.startswith("#")]
        prefix = None
    else:
        uris = list_files(config.input, tuple(config.suffixes), config.s3)
        prefix = config.input
    rows, seen = [], set()
    for uri in uris:
        video_id = video_id_for(uri, prefix)
        if video_id in seen:
            raise StorageError(f"two inputs map to the same output {video_id!r}; rename one")
        seen.add(video_id)
        rows.append({"video": uri, "video_id": video_id})
    return rows


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """NumPy scalars and arrays from Ray Data back to plain Python values."""
    out = {}
    for key, value in row.items():
        if hasattr(value, "tolist"):
            value = value.tolist()
        out[key] = value
    out["files"] = [str(f) for f in out["files"]]
    return out


def _known_failure(row: dict[str, str], config: InferConfig) -> dict[str, Any]:
    entry = _skipped(row, config, marker=FAILED)
    try:
        entry["error"] = json.loads(read_bytes(join(entry["output"], FAILED), config.s3))["error"]
    except (StorageError, ValueError, KeyError):
        entry["error"] = "failed in an earlier run"
    entry["status"] = "failed"
    return entry


def _skipped(row: dict[str, str], config: InferConfig, marker: str = SUCCESS) -> dict[str, Any]:
    output = join(config.output, row["video_id"])
    try:
        summary = json.loads(read_bytes(join(output, marker), config.s3))
    except (StorageError, ValueError):
        summary = {}
    return {
        "video": row["video"], "video_id": row["video_id"], "status": "skipped", "error": "",
        "frames": int(summary.get("frames", 0)), "fps": float(summary.get("fps", 0.0)),
        "width": int(summary.get("width", 0)), "height": int(summary.get("height", 0)),
        "seconds": 0.0, "output": output, "files": list(summary.get("files", [])),
        "model_size": "", "checkpoint_sha256": summary.get("checkpoint_sha256", ""),
    }  # fmt: skip


def write_manifest(rows: list[dict[str, Any]], config: InferConfig) -> str:
    table = pa.Table.from_pylist(rows, schema=MANIFEST_SCHEMA)
    stamp = time.strftime("%Y%m%dT%H%M%S")
    for uri in (
        join(config.output, "_manifests", f"manifest-{stamp}.parquet"),
        join(config.output, "manifest.parquet"),
    ):
        with open_output(uri, config.s3) as handle:
            pq.write_table(table, handle)
    return join(config.output, "manifest.parquet")


def run_infer(config: InferConfig, progress=print) -> InferResult:
    import ray

    if not exists(config.checkpoint, config.s3):  # before any cluster work starts
        raise StorageError(f"checkpoint {config.checkpoint} does not exist")
    if not ray.is_initialized():
        ray.init(log_to_driver=True, configure_logging=False)
    start = time.perf_counter()
    videos = list_videos(config)
    done, failed = marked_videos(config)
    if config.retry_failed:
        failed = set()
    todo = [row for row in videos if row["video_id"] not in done | failed]
    skipped = [_skipped(row, config) for row in videos if row["video_id"] in done]
    known_failures = [_known_failure(row, config) for row in videos if row["video_id"] in failed]
    progress(
        f"vda infer: {len(videos)} videos: {len(skipped)} already done, {len(known_failures)} "
        f"failed before (retry_failed=true retries them), {len(todo)} to process"
    )
    rows: list[dict[str, Any]] = []
    if todo:
        actors = config.actors
        dataset = ray.data.from_items(todo, override_num_blocks=len(todo)).map_batches(
            VideoDepthActor,
            fn_constructor_kwargs={"config": to_dict(config)},
            batch_size=1,
            compute=ray.data.ActorPoolStrategy(size=actors.num_actors),
            num_cpus=actors.cpus_per_actor,
            num_gpus=actors.gpus_per_actor or None,
            max_restarts=actors.max_restarts,
            max_task_retries=actors.max_restarts,
        )
        rows = [_plain(row) for row in dataset.take_all()]
    rows = sorted(rows + skipped + known_failures, key=lambda row: row["video_id"])
    manifest = write_manifest(rows, config)
    seconds = time.perf_counter() - start
    result = InferResult(rows=rows, manifest=manifest, seconds=seconds, mlflow_run_id=None)
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
            "frames": result.frames,
            "seconds": result.seconds,
            "frames_per_second": result.frames / result.seconds if result.seconds else 0.0,
        },
        step=0,
    )
    with tempfile.TemporaryDirectory() as folder:
        local = Path(folder) / "manifest.parquet"
        pq.write_table(pa.Table.from_pylist(result.rows, schema=MANIFEST_SCHEMA), local)
        client.log_artifact(run_id, str(local))
    client.set_terminated(run_id, status="FINISHED" if not result.count("failed") else "FAILED")
    return run_id
