"""`vda infer` against a loopback S3 archive: commits, failures, reruns, killed actors."""

from __future__ import annotations

import io
import uuid

import boto3
import numpy as np
import pyarrow.parquet as pq
import pytest
from helpers import tiny_model
from videos import moving_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.platform.core.config import build
from vda.platform.infer.config import InferConfig
from vda.platform.infer.job import run_infer
from vda.platform.storage import list_files, read_bytes

pytestmark = pytest.mark.integration

LENGTHS = {"a/clip0": 6, "a/clip1": 12, "b/clip2": 20, "b/clip3": 33, "clip4": 40}
BROKEN = {"broken/truncated.mp4", "broken/empty.mp4", "broken/notes.mp4"}


@pytest.fixture(scope="module")
def archive(s3_endpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("archive")
    bucket = f"archive-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    for i, (name, count) in enumerate(LENGTHS.items()):
        path = write_mp4v(folder / f"v{i}.mp4", moving_frames(count, 28, 42, seed=i), fps=10)
        s3.upload_file(str(path), bucket, f"videos/{name}.mp4")
    good = (folder / "v4.mp4").read_bytes()
    s3.put_object(Bucket=bucket, Key="videos/broken/truncated.mp4", Body=good[: len(good) // 2])
    s3.put_object(Bucket=bucket, Key="videos/broken/empty.mp4", Body=b"")
    s3.put_object(Bucket=bucket, Key="videos/broken/notes.mp4", Body=b"meeting notes\n" * 40)
    checkpoint = folder / "tiny.ckpt"
    save_checkpoint(tiny_model(seed=41), checkpoint)
    s3.upload_file(str(checkpoint), bucket, "models/tiny.ckpt")
    return bucket, folder


def _config(bucket, output, tmp_path, **extra):
    return build(
        InferConfig,
        {
            "input": f"s3://{bucket}/videos",
            "output": f"s3://{bucket}/{output}",
            "checkpoint": f"s3://{bucket}/models/tiny.ckpt",
            "input_size": 28,
            "outputs": {"chunk_frames": 16},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "infer"},
            **extra,
        },
    )


def _depth(bucket, prefix):
    files = sorted(u for u in list_files(f"s3://{bucket}/{prefix}", (".npz",)))
    arrays = [np.load(io.BytesIO(read_bytes(u))) for u in files]
    return np.concatenate([a["depth"] for a in arrays]), np.concatenate(
        [a["frame_index"] for a in arrays]
    )


def test_archive_commits_five_records_three_failures_and_a_rerun_does_nothing(
    archive, ray_cluster, tmp_path
):
    bucket, folder = archive
    result = run_infer(_config(bucket, "depth", tmp_path), progress=lambda _: None)
    assert result.count("done") == 5 and result.count("failed") == 3
    by_id = {row.video_id: row for row in result.rows}
    for name, count in LENGTHS.items():
        assert by_id[name].status == "done" and by_id[name].frames == count
        depth, index = _depth(bucket, f"depth/{name}")
        assert depth.shape == (count, 28, 42) and index.tolist() == list(range(count))
        assert list_files(f"s3://{bucket}/depth/{name}", ("_SUCCESS.json", "preview.mp4"))
    for name in BROKEN:
        row = by_id[name.removesuffix(".mp4")]
        assert row.status == "failed" and "cannot open video" in row.error
        assert name in row.error  # the message names the file
    assert not list_files(f"s3://{bucket}/depth/_tmp")  # nothing half-written left behind

    manifest = pq.read_table(io.BytesIO(read_bytes(f"s3://{bucket}/depth/manifest.parquet")))
    assert manifest.num_rows == 8
    assert sorted(manifest.column("status").to_pylist()).count("done") == 5

    again = run_infer(_config(bucket, "depth", tmp_path), progress=lambda _: None)
    assert again.count("skipped") == 5 and again.count("failed") == 3
    assert not any(row.processed for row in again.rows)  # nothing was processed

    # the committed depth equals `vda depth` on the same video with the same checkpoint
    _assert_same_depth(
        _depth(bucket, "depth/b/clip3")[0], _local_depth(bucket, folder, tmp_path, "b/clip3")
    )


def _assert_same_depth(actual, expected):
    """Equal up to one float16 step: Ray actors run torch on one thread (OMP_NUM_THREADS
    follows num_cpus) and `vda depth` on two, so fp32 sums differ in their last bits and
    an occasional value rounds to the neighbouring float16."""
    assert actual.shape == expected.shape and actual.dtype == expected.dtype == np.float16
    np.testing.assert_allclose(actual.astype(np.float32), expected.astype(np.float32), rtol=2**-10)
    assert np.mean(actual != expected) < 0.01


def _local_depth(bucket, folder, tmp_path, name):
    """`vda depth` on a local copy of an archive video."""
    local = tmp_path / f"{name.replace('/', '_')}.mp4"
    local.write_bytes(read_bytes(f"s3://{bucket}/videos/{name}.mp4"))
    out = tmp_path / "local"
    assert main(["depth", str(local), "--checkpoint", str(folder / "tiny.ckpt"), "-o", str(out),
                 "--input-size", "28", "--chunk-frames", "16", "--no-preview"]) == 0  # fmt: skip
    files = sorted((out / local.stem).glob("depth*.npz"))
    return np.concatenate([np.load(f)["depth"] for f in files])


def test_a_killed_actor_still_yields_a_complete_correct_archive(archive, ray_cluster, tmp_path):
    bucket, folder = archive
    config = _config(bucket, "depth-killed", tmp_path, fault={"exit_after_frames": 15})
    result = run_infer(config, progress=lambda _: None)
    assert list_files(f"s3://{bucket}/depth-killed", ("_fault_injected",))  # it did die
    assert result.count("done") == 5 and result.count("failed") == 3
    for name in LENGTHS:  # redone from the start: the same depth as an undisturbed run
        _assert_same_depth(
            _depth(bucket, f"depth-killed/{name}")[0], _local_depth(bucket, folder, tmp_path, name)
        )
