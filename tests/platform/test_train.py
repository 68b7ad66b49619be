"""Ray Train DDP of the head on synthetic shards in S3, with MLflow: learning, faults, resume."""

from __future__ import annotations

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from vda.platform.core.config import build
from vda.platform.storage import list_files
from vda.platform.train.config import TrainConfig, WorkersNotPlacedError
from vda.platform.train.driver import train

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def train_bucket(shards_bucket):
    return shards_bucket


@pytest.fixture(scope="module")
def shards(synthetic_shards):
    return synthetic_shards


def _config(tmp_path, shards, bucket, name, **overrides):
    base = {
        "name": name,
        "storage_path": f"s3://{bucket}/runs",
        "data": {
            "train": shards,
            "clip": {
                "clip_len": 4,
                "batch_size": 2,
                "windows_per_chunk": 6,
                "augment": {"height": 28, "width": 42, "max_scale": 1.2},
            },
            "val_clips": 4,
        },
        "optim": {"lr": 2e-3, "warmup_steps": 2},
        "epochs": 2,
        "steps_per_epoch": 12,
        "num_workers": 2,
        "cpus_per_worker": 0.5,
        "start_timeout_s": 120,  # the workers fit at once, or something holds the cluster
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "tests"},
    }
    for key, value in overrides.items():
        node = base
        *parents, last = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return build(TrainConfig, base)


def _history(result, key):
    client = MlflowClient(result.tracking_uri)
    return sorted((m.step, m.value) for m in client.get_metric_history(result.mlflow_run_id, key))


def test_ddp_training_learns_keeps_ranks_identical_and_tracks_everything(
    tmp_path, shards, train_bucket
):
    result = train(_config(tmp_path, shards, train_bucket, "learn"))
    losses = [value for _, value in _history(result, "train/loss")]
    assert len(losses) == 24  # 2 epochs x 12 steps: a few dozen steps
    assert np.mean(losses[-6:]) < np.mean(losses[:6])
    assert result.metrics["weight_spread"] == 0.0  # DDP kept the ranks identical
    assert result.metrics["step"] == 24 and result.metrics["epoch"] == 2
    assert 0 <= result.metrics["val_delta1"] <= 1 and result.metrics["val_abs_rel"] > 0
    assert "val_tae" in result.metrics  # synthetic clips carry poses
    checkpoints = list_files(f"s3://{train_bucket}/runs/learn", (".pt",))
    assert len(checkpoints) == 2  # one per epoch, within keep_checkpoints=2
    client = MlflowClient(result.tracking_uri)
    run = client.get_run(result.mlflow_run_id)
    assert run.info.status == "FINISHED"
    assert run.data.params["optim.lr"] == "0.002"
    assert not any("secret" in k.lower() for k in run.data.params)
    assert {"epoch/val_abs_rel", "time/data_wait_s", "train/lr"} <= set(run.data.metrics)
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert "train_config.yaml" in artifacts
    # MLflow 3 logs models as LoggedModels linked to the run; it loads back and runs
    models = client.search_logged_models(
        [run.info.experiment_id], filter_string=f"source_run_id = '{result.mlflow_run_id}'"
    )
    assert len(models) == 1
    import mlflow.pytorch
    import torch

    mlflow.set_tracking_uri(result.tracking_uri)
    loaded = mlflow.pytorch.load_model(models[0].model_uri)
    with torch.no_grad():
        depth = loaded(torch.zeros(1, 4, 3, 28, 42))
    assert depth.shape == (1, 4, 28, 42) and torch.isfinite(depth).all()
    # its requirements are given, pinned (not inferred: that costs a subprocess per run)
    requirements = mlflow.artifacts.load_text(models[0].artifact_location + "/requirements.txt")
    assert {"torch==2.14.1", "torchvision==0.29.1"} <= set(requirements.split())
    assert any(line.startswith("vda==") for line in requirements.split())


def test_workers_the_cluster_cannot_place_fail_the_run_after_start_timeout(
    tmp_path, shards, train_bucket
):
    """Two workers of 2 CPUs on a 2-CPU cluster never fit: the run fails with what it asked
    for once start_timeout_s has passed (Ray Train alone would retry every minute for
    ever), its MLflow run is marked FAILED, and nothing is left holding the cluster."""
    config = _config(
        tmp_path, shards, train_bucket, "unplaceable", cpus_per_worker=2.0, start_timeout_s=3
    )
    with pytest.raises(
        WorkersNotPlacedError,
        match=r"place 2 training workers of \{'CPU': 2.0\} \(PACK\) within "
        r"start_timeout_s=3 s, 1 time",
    ):
        train(config)
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    [run] = client.search_runs(
        [client.get_experiment_by_name("tests").experiment_id],
        filter_string="tags.`vda.run_name` = 'unplaceable'",
    )
    assert run.info.status == "FAILED"


def _killed_worker_run(tmp_path, shards, train_bucket, name):
    """One epoch of 12 steps in which rank 1 dies at step 8, after the step-8 checkpoint."""
    config = _config(
        tmp_path,
        shards,
        train_bucket,
        name,
        **{
            "epochs": 1,
            "max_failures": 1,
            "checkpoint_every_steps": 4,
            "fault.fail_at_step": 8,
            "fault.fail_rank": 1,
        },
    )
    first = train(config)
    assert list_files(f"s3://{train_bucket}/runs/{name}", (".fault_injected",))  # it did die
    assert first.metrics["step"] == 12 and first.metrics["epoch"] == 1
    steps = [step for step, _ in _history(first, "train/loss")]
    assert sorted(set(steps)) == list(range(1, 13))
    assert steps.count(1) == 1  # continued from the step-8 checkpoint: step 1 never ran again
    # mid-epoch checkpoints (steps 4, 8) are never "best": only the validated epoch end is
    assert first.best_checkpoint_path == first.checkpoint_path
    return first


def test_a_killed_worker_restarts_from_the_checkpoint(tmp_path, shards, train_bucket):
    _killed_worker_run(tmp_path, shards, train_bucket, "killed")


# make test: the restart is test_a_killed_worker_restarts_from_the_checkpoint; a rerun that
# resumes (same MLflow run, the finished epoch not redone) is the mixed-sources test's second run
@pytest.mark.long
def test_a_killed_worker_restarts_from_the_checkpoint_and_a_rerun_resumes(
    tmp_path, shards, train_bucket
):
    first = _killed_worker_run(tmp_path, shards, train_bucket, "fault")

    # the same name again, one epoch more: resumes at epoch 1, step 12
    second = train(_config(tmp_path, shards, train_bucket, "fault", epochs=2))
    assert second.mlflow_run_id == first.mlflow_run_id  # logging continues in the same run
    assert second.metrics["epoch"] == 2 and second.metrics["step"] == 24
    epochs = [step for step, _ in _history(second, "epoch/train_loss")]
    assert epochs == [12, 24]  # one entry per epoch: the first was not redone


@pytest.mark.long  # make test: test_submit's submitted training checks the same spread
def test_the_same_training_on_a_two_node_cluster(tmp_path, shards, train_bucket, two_node_cluster):
    """`vda train` as users run it, against a real two-node cluster: one worker per node."""
    import subprocess
    import sys
    from pathlib import Path

    address, _, env = two_node_cluster
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    command = [
        str(Path(sys.executable).parent / "vda"),
        "train",
        "--name",
        "two-nodes",
        "--data",
        shards,
        "--storage-path",
        f"s3://{train_bucket}/runs",
        "epochs=1",
        "steps_per_epoch=6",
        "num_workers=2",
        "cpus_per_worker=1",
        "placement_strategy=SPREAD",
        "data.clip.clip_len=4",
        "data.clip.windows_per_chunk=3",
        "data.clip.augment.height=28",
        "data.clip.augment.width=42",
        "data.val_clips=2",
        f"mlflow.tracking_uri={tracking}",
        "mlflow.experiment=two-nodes",
    ]
    out = subprocess.run(
        command, env={**env, "RAY_ADDRESS": address}, capture_output=True, text=True, timeout=600
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "MLflow run" in out.stdout and "latest checkpoint: s3://" in out.stdout
    client = MlflowClient(tracking)
    run = client.search_runs([client.get_experiment_by_name("two-nodes").experiment_id])[0]
    assert run.data.metrics["epoch/worker_nodes"] == 2  # SPREAD: one worker on each node
    assert run.data.metrics["epoch/weight_spread"] == 0.0


def test_mixed_video_and_pseudolabelled_image_sources_log_both_and_resume(
    tmp_path, shards, train_bucket, s3_endpoint
):
    """2 DDP workers on the synthetic video set plus a pseudo-labelled image set made here:
    both sources' terms are logged, images get no temporal term, and a rerun resumes."""
    import boto3
    import cv2
    from helpers import tiny_model
    from videos import moving_frames

    from vda.model import save_checkpoint
    from vda.platform.pseudolabel.config import PseudoLabelConfig
    from vda.platform.pseudolabel.job import run_pseudolabel

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for i in range(6):
        _, data = cv2.imencode(".png", moving_frames(1, 28, 42, seed=60 + i)[0])
        s3.put_object(Bucket=train_bucket, Key=f"images/{i}.png", Body=data.tobytes())
    save_checkpoint(tiny_model(seed=61), tmp_path / "teacher.ckpt")
    pseudo = f"s3://{train_bucket}/data/pseudo"
    run_pseudolabel(
        build(
            PseudoLabelConfig,
            {
                "input": f"s3://{train_bucket}/images",
                "output": pseudo,
                "teacher": str(tmp_path / "teacher.ckpt"),
                "input_size": 28,
                "actors": {"cpus_per_actor": 0.5},
            },
        ),
        progress=lambda _: None,
    )
    sources = [
        {"name": "video", "path": shards, "weight": 1.0},
        {"name": "pseudo", "path": pseudo, "weight": 1.0, "clip_len": 1},
    ]
    overrides = {"data.sources": sources, "data.val": shards, "epochs": 1, "steps_per_epoch": 8}
    first = train(_config(tmp_path, shards, train_bucket, "mixed", **overrides))
    assert first.metrics["step"] == 8
    video = _history(first, "train/video/ssi")
    images = _history(first, "train/pseudo/ssi")
    assert video and images and len(video) + len(images) == 8  # every step, one source
    assert all(value == 0.0 for _, value in _history(first, "train/pseudo/tgm"))  # T = 1
    assert any(value > 0.0 for _, value in _history(first, "train/video/tgm"))
    # the same draws on every rank: the weights stayed identical
    assert first.metrics["weight_spread"] == 0.0

    second = train(_config(tmp_path, shards, train_bucket, "mixed", **{**overrides, "epochs": 2}))
    assert second.mlflow_run_id == first.mlflow_run_id  # logging continues in the same run
    assert second.metrics["epoch"] == 2 and second.metrics["step"] == 16
    epochs = [step for step, _ in _history(second, "epoch/train_loss")]
    assert epochs == [8, 16]  # one entry per epoch: the first was not redone
    steps = sorted(
        step for key in ("train/video/ssi", "train/pseudo/ssi") for step, _ in _history(second, key)
    )
    assert steps == list(range(1, 17))  # resumed at step 8: nothing logged twice
