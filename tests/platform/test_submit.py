"""`vda submit` to a real two-node Ray cluster through its Jobs API."""

from __future__ import annotations

import io

import boto3
import numpy as np
import pytest
import yaml
from helpers import tiny_model
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
        ["submit", "--address", dashboard, "train", "--name", "submitted",
         "--data", synthetic_shards, "--storage-path", f"s3://{bucket}/submitted-runs",
         "epochs=1", "steps_per_epoch=4", "cpus_per_worker=1", "data.clip.clip_len=4",
         "data.clip.augment.height=28", "data.clip.augment.width=42", "data.val_clips=2",
         f"mlflow.tracking_uri={tracking}"]
    )  # fmt: skip
    printed = capsys.readouterr().out
    assert code == 0, printed[-3000:]
    assert "submitted raysubmit_" in printed and "SUCCEEDED" in printed
    assert list_files(f"s3://{bucket}/submitted-runs/submitted", (".pt",))

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


@pytest.fixture(scope="module")
def token_cluster(tmp_path_factory):
    """A head started as a new user starts one, with token authentication on (Ray 2.60's
    default); its token lives in a file of its own, not in this machine's ~/.ray."""
    import contextlib
    import os
    import signal
    import subprocess
    import sys
    import uuid

    from conftest import _node_ports, _wait_for_port
    from helpers import free_port

    folder = tmp_path_factory.mktemp("token-cluster")
    token = folder / "auth_token"
    token.write_text(uuid.uuid4().hex + uuid.uuid4().hex)
    port, dashboard = free_port(), free_port()
    env = {**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN_PATH": str(token)}
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    ray_bin = os.path.join(os.path.dirname(sys.executable), "ray")
    head = subprocess.Popen(
        [ray_bin, "start", "--head", "--block", f"--port={port}", "--num-cpus=2",
         "--dashboard-host=127.0.0.1", f"--dashboard-port={dashboard}",
         f"--ray-client-server-port={free_port()}", f"--temp-dir={tempfile_dir()}",
         "--min-worker-port=23000", "--max-worker-port=23999", *_node_ports()],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        _wait_for_port(dashboard, head, timeout=60)
        yield f"http://127.0.0.1:{dashboard}", token
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(head.pid, signal.SIGKILL)


def tempfile_dir() -> str:
    import tempfile

    return tempfile.mkdtemp(prefix="raytok", dir="/tmp")


def test_submit_status_and_logs_with_token_authentication(token_cluster, tmp_path, capsys):
    dashboard, token = token_cluster
    videos = tmp_path / "videos"
    videos.mkdir()
    write_mp4v(videos / "v.mp4", moving_frames(8, 28, 42, seed=2), fps=10)
    save_checkpoint(tiny_model(seed=6), tmp_path / "tiny.ckpt")
    job = ["infer", "--input", str(videos), "--output", str(tmp_path / "depth"),
           "--checkpoint", str(tmp_path / "tiny.ckpt"), "input_size=28", "outputs.preview=false",
           f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db"]  # fmt: skip

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
