"""`vda infer` driver: check, list, skip what is committed, schedule the rest, merge, record.

Resumable by construction: a video is done when its durable row
(`<output>/_manifests/done/<video>.json`, written after the commit) exists,
and only then; a listing decides it (`plan.py`, `rows.py`), not a GET per
video. Rows reach the manifest in part files as they arrive
(`manifest.ManifestParts`) and are not kept; the end compacts the parts
into the manifest as Arrow tables (`compact.py`). A rerun
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

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..core.config import flatten, to_dict
from ..core.session import start_ray
from ..core.tracking import tracked_run
from ..storage import StorageError, join
from ..storage.objects import delete
from .compact import compact
from .config import InferConfig
from .lease import OutputLease
from .manifest import ManifestParts, ManifestRow, drop_parts, write_manifest
from .plan import JobPlan, plan_job
from .quality import flag_table
from .rows import read_row_at


@dataclass
class InferResult:
    table: pa.Table  # the manifest: every listed video's row, by video id
    manifest: str
    seconds: float
    mlflow_run_id: str | None
    outliers: list[ManifestRow]
    scheduled_seconds: float = 0.0  # actors started, units run, stitches done: the makespan
    startup_seconds: float = 0.0  # of which: until the first actor had loaded the model
    actors_peak: int = 0  # the most actors that were ready at once

    @property
    def rows(self) -> list[ManifestRow]:
        """The manifest as Python objects: for a report or a test, not a million videos."""
        return [ManifestRow.from_dict(r) for r in self.table.to_pylist()]

    def _where(self, status: str) -> pa.ChunkedArray:
        done = pc.equal(self.table["status"], "done")
        if status == "skipped":
            return pc.and_(done, pc.invert(self.table["processed"]))
        if status == "done":
            return pc.and_(done, self.table["processed"])
        return pc.equal(self.table["status"], status)

    def count(self, status: str) -> int:
        """done / failed (this run or before) or skipped (done by an earlier run)."""
        return int(pc.sum(self._where(status)).as_py() or 0)

    def with_status(self, status: str) -> list[ManifestRow]:
        return [
            ManifestRow.from_dict(r) for r in self.table.filter(self._where(status)).to_pylist()
        ]

    @property
    def frames(self) -> int:
        """Frames processed by this run."""
        return int(pc.sum(self.table["frames"].filter(self._where("done"))).as_py() or 0)


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
        scheduled, startup, peak = _schedule(config, plan, progress, lease, parts)
        lease.check()
        parts.flush()
        table, merged = _compacted(config, plan, parts)
        table, outliers = flag_table(table)
        manifest = write_manifest(config.output, table, config.s3)
        drop_parts(sorted({*merged, *parts.written}), config.s3)
    seconds = time.perf_counter() - start
    result = InferResult(table, manifest, seconds, None, outliers, scheduled, startup, peak)
    result.mlflow_run_id = _track(config, result)
    return result


def _compacted(
    config: InferConfig, plan: JobPlan, parts: ManifestParts
) -> tuple[pa.Table, list[str]]:
    """Every listed video's row, by video id: the kept rows of earlier runs (from the last
    manifest and the part files and, for rows finished after a killed run's last part, one
    read each) and this run's (from its own parts, and the rows no part took); the parts
    merged."""
    return compact(
        config.output,
        plan.located(config.output),
        config.s3,
        lambda uri: read_row_at(uri, config.s3),
        config.lookup_threads,
        ours=parts.written,
        pending=parts.pending,
    )


def _schedule(
    config: InferConfig, plan, progress, lease: OutputLease, parts: ManifestParts
) -> tuple[float, float, int]:
    """Run the to-do units on the pool, each row to the manifest parts as it arrives:
    (makespan s, first actor ready s, peak actors)."""

    from .scheduler import InferScheduler

    if not plan.todo:
        return 0.0, 0.0, 0
    start_ray()
    with contextlib.suppress(StorageError):
        delete(join(config.output, "_tmp"), config.s3)  # dead attempts' staging
    started = time.perf_counter()
    scheduler = InferScheduler(config, plan.checkpoint_sha256, parts.add, progress, lease)
    scheduler.run(plan.todo)  # PoolStartError: no actor could start; the durable rows stay
    pool = scheduler.pool
    return time.perf_counter() - started, pool.first_ready_s or 0.0, pool.peak_ready


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
            pq.write_table(result.table, local)
            run.log_file(local)
        run.status = "FAILED" if result.count("failed") else "FINISHED"
    return run.run_id
