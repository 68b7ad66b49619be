"""`vda infer` driver: check, list, skip what is committed, schedule the rest, merge, record.

Resumable by construction: a video is done when its durable row
(`<output>/_manifests/done/<video>.json`, written after the commit) exists,
and only then; a listing decides it (`plan.py`, `rows.py`), not a GET per
video. Rows reach the manifest in part files as they arrive
(`manifest.ManifestParts`), compacted at the end. A rerun
processes only what is missing (and what failed, with retry_failed=true),
and a split video's finished segments are reused. Everything that can be
checked before Ray starts is: the listing, that the output prefix takes
writes, that the checkpoint reads and loads.

One job owns an output prefix at a time: the run starts by clearing
`_tmp/`, where dead attempts of earlier runs leave staged files.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from ..core.config import flatten, to_dict
from ..core.session import start_ray
from ..core.tracking import tracked_run
from ..storage import StorageError, join
from ..storage.objects import delete
from .config import InferConfig
from .lease import OutputLease
from .manifest import (
    ManifestParts,
    ManifestRow,
    drop_parts,
    manifest_table,
    merged_rows,
    write_manifest,
)
from .plan import plan_job
from .quality import flag_outliers
from .rows import read_row_at


@dataclass
class InferResult:
    rows: list[ManifestRow]
    manifest: str
    seconds: float
    mlflow_run_id: str | None
    outliers: list[ManifestRow]
    scheduled_seconds: float = 0.0  # actors started, units run, stitches done: the makespan
    startup_seconds: float = 0.0  # of which: until the first actor had loaded the model
    actors_peak: int = 0  # the most actors that were ready at once

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


def run_infer(config: InferConfig, progress=print) -> InferResult:

    start = time.perf_counter()
    plan = plan_job(config)  # before Ray: a bad prefix or checkpoint fails at once
    progress(f"vda infer: {plan.summary()}")
    if plan.weights_line():
        progress(f"vda infer: {plan.weights_line()}")
    # LeaseHeld: another job holds the prefix; LeaseLost: this one lost it mid-way (fenced)
    with OutputLease(config.output, config.lease_s, config.s3) as lease:
        parts = ManifestParts(
            config.output, config.s3, config.manifest.merge_s, config.manifest.merge_rows
        )
        rows, scheduled, startup, peak = _schedule(config, plan, progress, lease, parts)
        lease.check()
        parts.flush()
        kept, merged = _earlier_rows(config, plan.located(config.output))
        by_id = {**kept, **{r.video_id: r for r in rows}}
        ordered = sorted(by_id.values(), key=lambda r: r.video_id)
        outliers = flag_outliers(ordered)
        manifest = write_manifest(config.output, ordered, config.s3)
        drop_parts([*merged, *parts.written], config.s3)
    seconds = time.perf_counter() - start
    result = InferResult(ordered, manifest, seconds, None, outliers, scheduled, startup, peak)
    result.mlflow_run_id = _track(config, result)
    return result


def _earlier_rows(
    config: InferConfig, wanted: dict[str, tuple[str, str]]
) -> tuple[dict[str, ManifestRow], list[str]]:
    """The kept rows of earlier runs ({video id: (status, row URI)}), from the last manifest
    and the part files (and, for rows finished after a killed run's last part, one read
    each); the parts read."""
    rows, parts = merged_rows(
        config.output,
        wanted,
        config.s3,
        lambda uri: read_row_at(uri, config.s3),
        config.lookup_threads,
    )
    for row in rows.values():
        row.processed = False
    return rows, parts


def _schedule(
    config: InferConfig, plan, progress, lease: OutputLease, parts: ManifestParts
) -> tuple[list[ManifestRow], float, float, int]:
    """Run the to-do units on the pool: (rows, makespan s, first actor ready s, peak actors)."""

    from .scheduler import InferScheduler

    rows: list[ManifestRow] = []
    if not plan.todo:
        return rows, 0.0, 0.0, 0
    start_ray()
    with contextlib.suppress(StorageError):
        delete(join(config.output, "_tmp"), config.s3)  # dead attempts' staging
    started = time.perf_counter()

    def on_row(row: ManifestRow) -> None:
        rows.append(row)
        parts.add(row)

    scheduler = InferScheduler(config, plan.checkpoint_sha256, on_row, progress, lease)
    scheduler.run(plan.todo)  # PoolStartError: no actor could start; the durable rows stay
    pool = scheduler.pool
    return rows, time.perf_counter() - started, pool.first_ready_s or 0.0, pool.peak_ready


def _track(config: InferConfig, result: InferResult) -> str:
    with tracked_run(config.mlflow, "vda-infer", tags={"vda.job": "infer"}) as run:
        run.log_params(flatten(to_dict(config)))
        run.log_metrics(
            {
                "videos_done": result.count("done"),
                "videos_failed": result.count("failed"),
                "videos_skipped": result.count("skipped"),
                "videos_outliers": len(result.outliers),
                "frames": result.frames,
                "seconds": result.seconds,
                "frames_per_second": result.frames / result.seconds if result.seconds else 0.0,
            }
        )
        with tempfile.TemporaryDirectory() as folder:
            local = Path(folder) / "manifest.parquet"
            pq.write_table(manifest_table(result.rows), local)
            run.log_file(local)
        run.status = "FAILED" if result.count("failed") else "FINISHED"
    return run.run_id
