"""Long videos split into segments on several actors: the stitched output is the single engine's."""

from __future__ import annotations

import io
import json
import uuid

import boto3
import numpy as np
import pytest
import torch
from helpers import tiny_model
from videos import moving_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.model.inference import WindowConfig
from vda.platform.core.config import build
from vda.platform.infer.config import InferConfig
from vda.platform.infer.job import run_infer
from vda.platform.infer.segments import plan_segments
from vda.platform.storage import list_files, read_bytes

pytestmark = pytest.mark.integration

LONG = 211  # 10 windows: the last one partial (frames 198..210 real, the rest padding)


def test_segment_plans_hold_whole_windows_and_leave_short_videos_alone():
    window = WindowConfig()
    # 70 frames -> 3 windows a segment; 10 windows -> 3 + 3 + 3 + 1, the last open-ended
    assert plan_segments(LONG, window, 70) == [(0, 3), (3, 6), (6, 9), (9, None)]
    assert plan_segments(LONG, window, 10) == [(k, k + 1) for k in range(9)] + [(9, None)]
    assert plan_segments(60, window, 70) == []  # not longer than a segment
    assert plan_segments(None, window, 70) == []  # length unknown: one actor
    assert plan_segments(LONG, window, 0) == []  # off


@pytest.fixture(scope="module")
def long_archive(s3_endpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("long")
    bucket = f"long-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    write_mp4v(folder / "long.mp4", moving_frames(LONG, 28, 42, seed=11), fps=10)
    write_mp4v(folder / "short.mp4", moving_frames(20, 28, 42, seed=12), fps=10)
    for name in ("long", "short"):
        s3.upload_file(str(folder / f"{name}.mp4"), bucket, f"videos/{name}.mp4")
    save_checkpoint(tiny_model(seed=43), folder / "tiny.ckpt")
    s3.upload_file(str(folder / "tiny.ckpt"), bucket, "models/tiny.ckpt")
    return bucket, folder


def _config(bucket, tmp_path, **extra):
    return build(
        InferConfig,
        {
            "input": f"s3://{bucket}/videos",
            "output": f"s3://{bucket}/depth",
            "checkpoint": f"s3://{bucket}/models/tiny.ckpt",
            "input_size": 28,
            "outputs": {"depth_dtype": "float32", "chunk_frames": 64},
            "split": {"segment_frames": 70},
            # the pool takes every CPU of the 2-CPU test cluster: stitches must still run
            "actors": {"num_actors": 2, "cpus_per_actor": 1.0, "max_attempts": 2},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "split"},
            **extra,
        },
    )


def _depth(bucket, prefix):
    files = sorted(list_files(f"s3://{bucket}/{prefix}", (".npz",)))
    arrays = [np.load(io.BytesIO(read_bytes(u))) for u in files]
    return (
        np.concatenate([a["depth"] for a in arrays]),
        np.concatenate([a["frame_index"] for a in arrays]),
    )


def test_split_video_stitches_to_the_single_engine_output_and_a_failed_segment_is_redone_alone(
    long_archive, ray_cluster, tmp_path
):
    bucket, folder = long_archive
    # run 1: segment 2 of the long video kills its actor on every attempt; with one actor,
    # the stitch it hosts dies with it each time and must wait for its successor
    # (one CPU, so that its sums run on one thread as run 2's and the single engine's do)
    lines: list[str] = []
    one_actor = {"num_actors": 1, "cpus_per_actor": 1.0, "max_attempts": 2}
    config = _config(bucket, tmp_path, fault={"crash_videos": ["long#2"]}, actors=one_actor)
    first = run_infer(config, lines.append)
    rows = {r.video_id: r for r in first.rows}
    assert rows["short"].status == "done" and rows["short"].segments == 0  # short: not split
    assert rows["long"].status == "failed" and "segment 2" in rows["long"].error
    assert "died on each of 2 attempts" in rows["long"].error
    assert any("long: split into 4 segments" in line for line in lines)
    done_segments = list_files(f"s3://{bucket}/depth/_segments/long", ("_DONE.json",))
    assert len(done_segments) == 3  # segments 0, 1, 3 finished and are kept for the rerun

    # run 2: only the missing segment runs, then the stitch commits the video
    lines.clear()
    # (segments 0, 1 and 3 would kill their actor if they ran again: only segment 2 may run)
    redo = {"crash_videos": ["long#0", "long#1", "long#3"]}
    second = run_infer(_config(bucket, tmp_path, retry_failed=True, fault=redo), lines.append)
    rows = {r.video_id: r for r in second.rows}
    assert rows["long"].status == "done" and rows["long"].segments == 4
    assert rows["long"].frames == LONG and not rows["short"].processed
    assert rows["long"].seconds > 0 and rows["long"].attempts == 1
    assert any("split into 4 segments (3 done before)" in line for line in lines)
    assert not list_files(f"s3://{bucket}/depth/_segments")  # dropped after the commit
    assert not list_files(f"s3://{bucket}/depth/_tmp")

    # the single engine on the same video and checkpoint, on one thread as the actors ran
    # (a sum over two threads differs in its last bits, and this model's range is small)
    out = tmp_path / "single"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert (
            main(
                [
                    "depth",
                    str(folder / "long.mp4"),
                    "--checkpoint",
                    str(folder / "tiny.ckpt"),
                    "-o",
                    str(out),
                    "--input-size",
                    "28",
                    "--depth-dtype",
                    "float32",
                    "--chunk-frames",
                    "64",
                ]
            )
            == 0
        )
    finally:
        torch.set_num_threads(threads)
    expected = np.concatenate([np.load(f)["depth"] for f in sorted((out / "long").glob("*.npz"))])
    stitched, index = _depth(bucket, "depth/long")
    assert stitched.dtype == np.float32 and stitched.shape == expected.shape == (LONG, 28, 42)
    assert index.tolist() == list(range(LONG))
    depth_range = float(expected.max() - expected.min())
    assert depth_range > 0
    assert np.abs(stitched - expected).max() <= 1e-5 * depth_range
    # the alignment chain is the single engine's, window by window
    single = json.loads((out / "long" / "metadata.json").read_text())["alignments"]
    split = json.loads(read_bytes(f"s3://{bucket}/depth/long/metadata.json"))["alignments"]
    assert [a["index"] for a in split] == [a["index"] for a in single] == list(range(1, 10))
    for mine, theirs in zip(split, single):
        assert mine["scale"] == pytest.approx(theirs["scale"], rel=1e-6)
        assert mine["shift"] == pytest.approx(theirs["shift"], rel=1e-6, abs=1e-9)


def test_split_video_point_clouds_carry_the_frames_colours(long_archive, ray_cluster, tmp_path):
    from plyfile import PlyData

    from vda.platform.storage import write_bytes

    # the same weights under the official metric name: point clouds need metric depth
    bucket, folder = long_archive
    write_bytes(f"s3://{bucket}/models/metric_tiny.ckpt", (folder / "tiny.ckpt").read_bytes())
    config = _config(
        bucket,
        tmp_path,
        checkpoint=f"s3://{bucket}/models/metric_tiny.ckpt",
        output=f"s3://{bucket}/depth-ply",
        outputs={"ply": True, "ply_every": 100, "focal_length_x": 40.0, "focal_length_y": 40.0},
    )
    result = run_infer(config, progress=lambda _: None)
    long_row = next(r for r in result.rows if r.video_id == "long")
    assert long_row.status == "done" and long_row.segments > 1  # the stitched path
    files = sorted(list_files(f"s3://{bucket}/depth-ply/long/ply", (".ply",)))
    assert [f.rsplit("/", 1)[-1] for f in files] == [
        "long_000000.ply",
        "long_000100.ply",
        "long_000200.ply",
    ]
    vertex = PlyData.read(io.BytesIO(read_bytes(files[1])))["vertex"]
    colours = np.stack([vertex["red"], vertex["green"], vertex["blue"]], axis=1)
    assert colours.shape == (28 * 42, 3) and colours.std() > 5  # the texture, not blank
