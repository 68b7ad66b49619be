"""`vda bench train`: how much of a training step waits for data, 2 workers reading S3.

Runs a short training job (tiny head by default) whose workers read clip
shards from object storage, and reports the share of step time spent
waiting for the next batch, from the loop's own per-step timings. Without
`--data` it prepares synthetic shards in an S3 server on loopback (moto, a
test dependency) so that the reads really go over the S3 protocol.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from contextlib import contextmanager

import numpy as np

from ..core.session import start_ray
from .loopback import loopback_s3
from .machine import describe_machine


def run_train_bench(data: str | None, steps: int, workers: int, size: str, side: int) -> dict:
    import boto3
    from mlflow.tracking import MlflowClient

    from ..core.config import build
    from ..data.prepare import PrepareConfig, SyntheticOptions, prepare
    from ..train.config import TrainConfig
    from ..train.driver import train

    print(f"machine: {describe_machine()}", flush=True)
    with tempfile.TemporaryDirectory() as folder, loopback_s3() if data is None else _nothing():
        if data is None:
            bucket = f"bench-{uuid.uuid4().hex[:8]}"
            boto3.client("s3").create_bucket(Bucket=bucket)
            data = f"s3://{bucket}/synthetic"
            start_ray(num_cpus=os.cpu_count(), include_dashboard=False)
            prepare(
                PrepareConfig(
                    dst=data,
                    chunk_frames=16,
                    synthetic=SyntheticOptions(sequences=8, frames=32, height=side, width=side),
                ),
                progress=lambda _: None,
            )
        config = build(
            TrainConfig,
            {
                "name": "bench",
                "storage_path": f"{folder}/runs",
                "model": {"size": size},
                "data": {
                    "train": data,
                    "clip": {
                        "clip_len": 8,
                        "batch_size": 2,
                        "windows_per_chunk": 8,
                        "augment": {"height": side, "width": side},
                    },
                    "val_clips": 1,
                },
                "epochs": 1,
                "steps_per_epoch": steps,
                "num_workers": workers,
                "cpus_per_worker": 0.5,
                "mlflow": {"tracking_uri": f"sqlite:///{folder}/mlflow.db", "experiment": "bench"},
            },
        )
        result = train(config)
        client = MlflowClient(result.tracking_uri)
        wait = [
            m.value for m in client.get_metric_history(result.mlflow_run_id, "time/data_wait_s")
        ]
        compute = [
            m.value for m in client.get_metric_history(result.mlflow_run_id, "time/compute_s")
        ]
    steady_wait, steady_compute = np.asarray(wait[1:]), np.asarray(compute[1:])
    share = float(steady_wait.sum() / (steady_wait.sum() + steady_compute.sum()))
    first = wait[0] / (wait[0] + compute[0])
    print(
        f"data wait ({workers} workers, {size}, {side}x{side} clips of 8 from {data}): "
        f"{100 * share:.1f}% of step time over steps 2..{len(wait)} (target <= 5%); "
        f"the first step waits {wait[0]:.1f} s for the pipeline to start ({100 * first:.0f}%)",
        flush=True,
    )
    return {"data_wait_share": share, "first_step_wait_s": wait[0], "steps": len(wait)}


@contextmanager
def _nothing():
    yield None
