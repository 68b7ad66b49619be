"""`vda submit` to a real two-node Ray cluster through its Jobs API.

The submitted training spreads its two DDP workers over the two nodes: this is
`make test`'s check of multi-node training (`test_the_same_training_on_a_two_node_cluster`,
the same run started with `vda train` directly, is in `make test-long`).
"""

from __future__ import annotations

import io

import boto3
import numpy as np
import pytest
import yaml
from helpers import tiny_model
from mlflow.tracking import MlflowClient
from videos import moving_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.platform.storage import list_files, read_bytes

pytestmark = pytest.mark.integration


def test_submitted_training_and_bulk_depth_jobs_succeed(
    tmp_path, two_node_cluster, synthetic_shards, shards_bucket, s3_endpoint, capsys
):
    _, dashboard, _ = two_node_cluster
    bucket = shards_bucket
    tracking = f"sqlite:///{tmp_path}/mlflow.db"
    code = main(
        [
            "submit",
            "--address",
            dashboard,
            "train",
            "--name",
            "submitted",
            "--data",
            synthetic_shards,
            "--storage-path",
            f"s3://{bucket}/submitted-runs",
            "epochs=1",
            "steps_per_epoch=4",
            "num_workers=2",
            "cpus_per_worker=1",
            "placement_strategy=SPREAD",
            "data.clip.clip_len=4",
            "data.clip.augment.height=28",
            "data.clip.augment.width=42",
            "data.val_clips=2",
            f"mlflow.tracking_uri={tracking}",
        ]
    )
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert "submitted raysubmit_" in printed and "SUCCEEDED" in printed
    assert list_files(f"s3://{bucket}/submitted-runs/submitted", (".pt",))
    client = MlflowClient(tracking)
    run = client.search_runs([client.get_experiment_by_name("vda").experiment_id])[0]
    assert run.data.metrics["epoch/worker_nodes"] == 2  # SPREAD: one DDP worker on each node
    assert run.data.metrics["epoch/weight_spread"] == 0.0  # the ranks stayed identical

    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    for i in range(2):
        path = write_mp4v(tmp_path / f"v{i}.mp4", moving_frames(10, 28, 42, seed=i), fps=10)
        s3.upload_file(str(path), bucket, f"submit-videos/v{i}.mp4")
    checkpoint = tmp_path / "tiny.ckpt"
    save_checkpoint(tiny_model(seed=5), checkpoint)
    s3.upload_file(str(checkpoint), bucket, "models/tiny.ckpt")
    config = tmp_path / "infer.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "input": f"s3://{bucket}/submit-videos",
                "output": f"s3://{bucket}/submit-depth",
                "checkpoint": f"s3://{bucket}/models/tiny.ckpt",
                "input_size": 28,
                "outputs": {"preview": False},
                "mlflow": {"tracking_uri": tracking},
            }
        )
    )
    code = main(["submit", "--address", dashboard, "infer", "--config", str(config)])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert "2 done, 0 failed" in printed
    depth = np.load(io.BytesIO(read_bytes(f"s3://{bucket}/submit-depth/v1/depth.npz")))["depth"]
    assert depth.shape == (10, 28, 42)


def test_submit_status_and_logs_with_token_authentication(
    token_cluster, tmp_path, capsys, monkeypatch
):
    dashboard, token, _ = token_cluster
    # a user with no token of their own (this machine's ~/.ray may hold another cluster's)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.delenv("RAY_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("RAY_AUTH_TOKEN_PATH", raising=False)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_mp4v(videos / "v.mp4", moving_frames(8, 28, 42, seed=2), fps=10)
    save_checkpoint(tiny_model(seed=6), tmp_path / "tiny.ckpt")
    job = [
        "infer",
        "--input",
        str(videos),
        "--output",
        str(tmp_path / "depth"),
        "--checkpoint",
        str(tmp_path / "tiny.ckpt"),
        "input_size=28",
        "outputs.preview=false",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]

    # without the token: one line that says what to do, no traceback
    assert main(["submit", "--address", dashboard, *job]) == 2
    err = capsys.readouterr().err
    assert "requires a token" in err and "--token-file" in err and "Traceback" not in err
    assert err.count("\n") == 1

    code = main(["submit", "--address", dashboard, "--token-file", str(token), *job])
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert "1 done, 0 failed" in printed
    submission = printed.split("submitted ", 1)[1].split()[0]
    assert main(["status", submission, "--address", dashboard, "--token-file", str(token)]) == 0
    assert "SUCCEEDED" in capsys.readouterr().out
    assert main(["logs", submission, "--address", dashboard, "--token-file", str(token)]) == 0
    assert "1 done, 0 failed" in capsys.readouterr().out
    assert np.load(tmp_path / "depth" / "v" / "depth.npz")["depth"].shape == (8, 28, 42)
