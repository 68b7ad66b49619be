"""`vda infer` driver: check, list, skip what is committed, schedule the rest, merge, record.

Resumable by construction: a video is done when its durable row
(`<output>/_manifests/done/<video>.json`, written after the commit) exists,
and only then; a listing decides it (`plan.py`, `rows.py`), not a GET per
video. Rows reach the manifest in part files as they arrive
(`manifest.ManifestParts`) and are not kept; the end streams the parts
into the manifest (`compact.py`). A rerun
processes only what is missing (and what failed, with retry_failed=true),
and a split video's finished segments are reused. Everything that can be
checked before Ray starts is: the listing, that the output prefix takes
writes, that the checkpoint reads and loads.

One job owns an output prefix at a time: the run starts by clearing
`_tmp/`, where dead attempts of earlier runs leave staged files.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..core.config import flatten, to_dict
from ..core.session import start_ray
from ..core.tracking import tracked_run
from ..storage import S3Settings, StorageError, join, open_input
from ..storage.objects import delete
from .compact import compact, read_merge
from .config import InferConfig
from .lease import OutputLease
from .manifest import ManifestParts, ManifestRow, drop_parts
from .plan import plan_job
from .rows import read_row_at


@dataclass
class InferResult:
    manifest: str  # its URI: the table of every listed video's row
    seconds: float
    mlflow_run_id: str | None
    outliers: list[ManifestRow]  # worst first
    counts: dict[str, int] = field(default_factory=dict)  # done, failed, skipped, frames
    scheduled_seconds: float = 0.0  # actors started, units run, stitches done: the makespan
    startup_seconds: float = 0.0  # of which: until the first actor had loaded the model
    actors_peak: int = 0  # the most actors that were ready at once
    actor_calls: int = 0  # calls that carried units: fewer than the units where videos batched
    settings: S3Settings | None = None

    @property
    def table(self) -> pa.Table:
        """The manifest, read from storage: for a report or a test, not a million videos."""
        table = read_merge(self.manifest, self.settings)
        if table is None:
            raise StorageError(f"cannot read the manifest {self.manifest}")
        return table

    @property
    def rows(self) -> list[ManifestRow]:
        """The manifest's rows by video id (Python objects: a report's or a test's)."""
        rows = [ManifestRow.from_dict(r) for r in self.table.to_pylist()]
        return sorted(rows, key=lambda r: r.video_id)

    def count(self, status: str) -> int:
        """done (this run), failed (this run or before) or skipped (done before)."""
        return self.counts.get(status, 0)

    def failed(self, limit: int) -> list[ManifestRow]:
        """Up to `limit` failed rows (read from the manifest, failed rows only)."""
        if not self.count("failed"):
            return []
        with open_input(self.manifest, self.settings) as handle:
            table = pq.read_table(handle, filters=[("status", "=", "failed")])
        return [ManifestRow.from_dict(r) for r in table.slice(0, limit).to_pylist()]

    @property
    def frames(self) -> int:
        """Frames processed by this run."""
        return self.counts.get("frames", 0)


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
        scheduled, startup, peak, calls = _schedule(config, plan, progress, lease, parts)
        lease.check()
        parts.flush()
        done = compact(  # the earlier runs' kept rows, and this run's from its own parts
            config.output,
            plan.located(config.output),
            config.s3,
            lambda uri: read_row_at(uri, config.s3),
            config.lookup_threads,
            ours=parts.written,
            pending=parts.pending,
        )
        drop_parts(sorted({*done.parts, *parts.written}), config.s3)
    result = InferResult(
        done.manifest,
        time.perf_counter() - start,
        None,
        done.outliers,
        done.counts,
        scheduled,
        startup,
        peak,
        calls,
        config.s3,
    )
    result.mlflow_run_id = _track(config, result)
    return result


def _schedule(
    config: InferConfig, plan, progress, lease: OutputLease, parts: ManifestParts
) -> tuple[float, float, int, int]:
    """Run the to-do units on the pool, each row to the manifest parts as it arrives:
    (makespan s, first actor ready s, peak actors, actor calls)."""

    from .scheduler import InferScheduler

    if not plan.todo:
        return 0.0, 0.0, 0, 0
    start_ray()
    with contextlib.suppress(StorageError):
        delete(join(config.output, "_tmp"), config.s3)  # dead attempts' staging
    started = time.perf_counter()
    scheduler = InferScheduler(config, plan.checkpoint_sha256, parts.add, progress, lease)
    scheduler.run(plan.todo)  # PoolStartError: no actor could start; the durable rows stay
    pool = scheduler.pool
    elapsed = time.perf_counter() - started
    return elapsed, pool.first_ready_s or 0.0, pool.peak_ready, scheduler.calls


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
            with open_input(result.manifest, config.s3) as source, local.open("wb") as target:
                shutil.copyfileobj(source, target, length=8 << 20)  # streamed: it can be large
            run.log_file(local)
        run.status = "FAILED" if result.count("failed") else "FINISHED"
    return run.run_id
