"""`vda infer` against a loopback S3 archive: commits, failures, reruns, killed actors."""

from __future__ import annotations

import io
import json
import uuid

import boto3
import cv2
import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from helpers import run_metadata_keys, tiny_model
from videos import moving_frames, shot_frames, write_h264, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.model.inference import InferenceConfig, StreamingDepthEngine
from vda.platform.core.config import build
from vda.platform.infer.config import InferConfig
from vda.platform.infer.job import run_infer
from vda.platform.storage import list_files, read_bytes

pytestmark = pytest.mark.integration

LENGTHS = {"a/clip0": 6, "a/clip1": 12, "b/clip2": 20, "b/clip3": 33, "clip4": 40}
# odd shapes that must come out right: (frames, height, width)
SHAPES = {
    "odd/one_frame": (1, 28, 42),
    "odd/size333x197": (5, 197, 333),
    "odd/portrait": (9, 42, 28),
}
BROKEN = {"broken/truncated.mp4", "broken/empty.mp4", "broken/notes.mp4", "broken/random.mp4"}


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
    noise = np.random.default_rng(3).integers(0, 256, 5000, dtype=np.uint8).tobytes()
    s3.put_object(Bucket=bucket, Key="videos/broken/random.mp4", Body=noise)
    for name, (count, height, width) in SHAPES.items():
        frames = moving_frames(count, height, width, seed=count)
        if height % 2 or width % 2:  # odd sizes: lossless FFV1 in Matroska keeps them
            path = write_h264(folder / "odd.mkv", frames, fps=10, codec="ffv1", pix_fmt="bgr0")
            s3.upload_file(str(path), bucket, f"videos/{name}.mkv")
        else:
            path = write_mp4v(folder / f"{count}.mp4", frames, fps=10)
            s3.upload_file(str(path), bucket, f"videos/{name}.mp4")
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


GOOD = len(LENGTHS) + len(SHAPES)


def test_archive_commits_good_videos_records_bad_ones_and_a_rerun_does_nothing(
    archive, ray_cluster, tmp_path
):
    bucket, folder = archive
    result = run_infer(_config(bucket, "depth", tmp_path), progress=lambda _: None)
    assert result.count("done") == GOOD and result.count("failed") == len(BROKEN)
    by_id = {row.video_id: row for row in result.rows}
    shapes = {**{n: (c, 28, 42) for n, c in LENGTHS.items()}, **SHAPES}
    for name, (count, height, width) in shapes.items():
        assert by_id[name].status == "done" and by_id[name].frames == count
        depth, index = _depth(bucket, f"depth/{name}")
        assert depth.shape == (count, height, width) and index.tolist() == list(range(count))
        assert list_files(f"s3://{bucket}/depth/{name}", ("_SUCCESS.json", "preview.mp4"))
        meta = json.loads(read_bytes(f"s3://{bucket}/depth/{name}/metadata.json"))
        assert meta["precision"] == "fp32" and meta["device"] == "cpu"  # what ran, on a CPU
        assert run_metadata_keys() <= set(meta) and meta["metadata_version"] == 3  # as vda depth
    for name in BROKEN:
        row = by_id[name.removesuffix(".mp4")]
        assert row.status == "failed" and "cannot open video" in row.error
        assert name in row.error  # the message names the file
    assert not list_files(f"s3://{bucket}/depth/_tmp")  # nothing half-written left behind
    # durable per-video rows, one per listed video
    assert len(list_files(f"s3://{bucket}/depth/_manifests/done", (".json",))) == GOOD
    assert len(list_files(f"s3://{bucket}/depth/_manifests/failed", (".json",))) == len(BROKEN)

    manifest = pq.read_table(io.BytesIO(read_bytes(f"s3://{bucket}/depth/manifest.parquet")))
    assert manifest.num_rows == GOOD + len(BROKEN)
    assert manifest.column("status").to_pylist().count("done") == GOOD
    clip3 = manifest.filter(pc.equal(manifest["video_id"], "b/clip3")).to_pylist()[0]
    assert clip3["windows"] == 2 and clip3["scale_median"] > 0 and clip3["fit_residual_max"] >= 0
    assert 0 <= clip3["zero_share"] <= 1 and clip3["nonfinite_share"] == 0

    again = run_infer(_config(bucket, "depth", tmp_path), progress=lambda _: None)
    assert again.count("skipped") == GOOD and again.count("failed") == len(BROKEN)
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
    assert (
        main(
            [
                "depth",
                str(local),
                "--checkpoint",
                str(folder / "tiny.ckpt"),
                "-o",
                str(out),
                "--input-size",
                "28",
                "--chunk-frames",
                "16",
                "--no-preview",
            ]
        )
        == 0
    )
    files = sorted((out / local.stem).glob("depth*.npz"))
    return np.concatenate([np.load(f)["depth"] for f in files])


@pytest.mark.long  # make test: the chaos test kills actors at seeded moments and checks the same
def test_a_killed_actor_still_yields_a_complete_correct_archive(archive, ray_cluster, tmp_path):
    bucket, folder = archive
    config = _config(bucket, "depth-killed", tmp_path, fault={"exit_after_frames": 15})
    result = run_infer(config, progress=lambda _: None)
    assert list_files(f"s3://{bucket}/depth-killed", ("_fault_injected",))  # it did die
    assert result.count("done") == GOOD and result.count("failed") == len(BROKEN)
    for name in LENGTHS:  # redone from the start: the same depth as an undisturbed run
        _assert_same_depth(
            _depth(bucket, f"depth-killed/{name}")[0], _local_depth(bucket, folder, tmp_path, name)
        )


def test_poison_video_that_kills_its_actor_every_time_is_recorded_and_the_rest_finish(
    archive, ray_cluster, tmp_path, capsys
):
    bucket, _ = archive
    argv = [
        "infer",
        "--input",
        f"s3://{bucket}/videos",
        "--output",
        f"s3://{bucket}/depth-poison",
        "--checkpoint",
        f"s3://{bucket}/models/tiny.ckpt",
        "input_size=28",
        "outputs.preview=false",
        "actors.max_attempts=2",
        "actors.overlap=always",  # units side by side: a death with two begun charges neither
        "fault.crash_videos=[b/clip2]",
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    assert main(argv) == 0  # failures alone do not fail the job...
    printed = capsys.readouterr()
    assert f"{GOOD - 1} done, {len(BROKEN) + 1} failed" in printed.out
    # archive-wide progress: counts, rate and ETA, and the retry said as it happens
    total = GOOD + len(BROKEN)
    assert f"[1/{total}]" in printed.out and f"[{total}/{total}]" in printed.out
    assert "to go;" in printed.out and "frames/s; ETA" in printed.out
    assert "b/clip2: the actor died (attempt 1 of 2); retrying" in printed.out
    manifest = pq.read_table(io.BytesIO(read_bytes(f"s3://{bucket}/depth-poison/manifest.parquet")))
    rows = {r["video_id"]: r for r in manifest.to_pylist()}
    poison = rows["b/clip2"]
    assert poison["status"] == "failed" and poison["attempts"] == 2
    assert "the actor died on each of 2 attempts at the video" in poison["error"]
    assert all(rows[name]["status"] == "done" for name in LENGTHS if name != "b/clip2")
    # a video that ran beside it when its actor died was retried alone, uncharged
    assert all(rows[name]["attempts"] == 1 for name in LENGTHS if name != "b/clip2")
    assert main([*argv, "--fail-on-error"]) == 1  # ...unless asked; nothing is redone for it
    assert "0 done" in capsys.readouterr().out


def test_chaos_actor_kills_a_second_job_and_a_killed_driver_then_a_rerun_equal_a_clean_run(
    archive, ray_cluster, two_node_cluster, tmp_path, capsys
):
    """On the two-node cluster: actors SIGKILLed at seeded moments, a second job on the same
    prefix refused by the lease, the driver SIGKILLed, a rerun. Two videos are split over
    actors (their stitches run inside actors that may be killed too)."""
    import os
    import random
    import signal
    import subprocess
    import sys
    import time

    from ray.util.state import list_actors

    bucket, _ = archive
    address, dashboard, env = two_node_cluster
    settings = [
        "input_size=28",
        "outputs.chunk_frames=16",
        "outputs.preview=false",
        "split.segment_frames=16",  # b/clip3 (33 frames) and clip4 (40): 2 segments each
        f"mlflow.tracking_uri=sqlite:///{tmp_path}/mlflow.db",
    ]
    clean = run_infer(
        _config(
            bucket,
            "depth-clean",
            tmp_path,
            outputs={"chunk_frames": 16, "preview": False},
            split={"segment_frames": 16},
        ),
        progress=lambda _: None,
    )
    assert {r.video_id: r.segments for r in clean.rows if r.segments} == {"b/clip3": 2, "clip4": 2}
    argv = [
        sys.executable,
        "-m",
        "vda.jobs.cli",
        "infer",
        "--input",
        f"s3://{bucket}/videos",
        "--output",
        f"s3://{bucket}/depth-chaos",
        "--checkpoint",
        f"s3://{bucket}/models/tiny.ckpt",
        *settings,
    ]
    rows = f"s3://{bucket}/depth-chaos/_manifests/done"
    driver = subprocess.Popen(
        [*argv, "fault.frame_delay_s=0.1", "actors.max_attempts=5"],
        env={**env, "RAY_ADDRESS": address},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    rng = random.Random(24)
    kills = sorted(rng.uniform(0.0, 6.0) for _ in range(3))  # seconds after the first actor runs
    killed, first_alive = 0, None
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline and driver.poll() is None:
        alive = list_actors(
            address=dashboard,
            detail=True,
            filters=[("class_name", "=", "VideoDepthWorker"), ("state", "=", "ALIVE")],
        )
        if alive and first_alive is None:
            first_alive = time.monotonic()
        if alive and kills and time.monotonic() - first_alive >= kills[0]:
            os.kill(rng.choice(sorted(a.pid for a in alive)), signal.SIGKILL)
            kills.pop(0)
            killed += 1
        done = [u for u in list_files(rows, (".json",)) if "/broken/" not in u]
        if not kills and len(done) >= 3:
            break
        time.sleep(0.2)
    assert killed == 3 and driver.poll() is None, "the job ended before the chaos was done"
    # a second job on the same output prefix is refused while the first one holds it
    second = ["infer", *argv[4:]]
    assert main(second) == 2
    refused = capsys.readouterr().err
    assert "is in use by another vda infer" in refused and str(driver.pid) in refused
    os.kill(driver.pid, signal.SIGKILL)
    driver.wait()
    committed = {u for u in list_files(rows, (".json",))}
    assert 3 <= len([u for u in committed if "/broken/" not in u]) < GOOD  # killed mid-job

    rerun = subprocess.run(  # the dead driver's lease is taken over at once (its pid is gone)
        argv, env={**env, "RAY_ADDRESS": address}, capture_output=True, text=True, timeout=300
    )
    assert rerun.returncode == 0, rerun.stdout[-2000:] + rerun.stderr[-2000:]
    manifest = pq.read_table(
        io.BytesIO(read_bytes(f"s3://{bucket}/depth-chaos/manifest.parquet"))
    ).to_pylist()
    expected = {r.video_id: r for r in clean.rows}
    assert sorted(r["video_id"] for r in manifest) == sorted(expected)
    for row in manifest:
        twin = expected[row["video_id"]]
        assert (row["status"], row["frames"], row["segments"], sorted(row["files"])) == (
            twin.status,
            twin.frames,
            twin.segments,
            sorted(twin.files),
        )
        if row["status"] == "done":
            _assert_same_depth(
                _depth(bucket, f"depth-chaos/{row['video_id']}")[0],
                _depth(bucket, f"depth-clean/{row['video_id']}")[0],
            )
    # what was committed before the kill was not redone; no staging of dead attempts is left
    redone = {r["video_id"] for r in manifest if r["processed"]}
    assert not redone & {u.rsplit("/done/", 1)[1].removesuffix(".json") for u in committed}
    assert not list_files(f"s3://{bucket}/depth-chaos/_tmp")
    assert not list_files(f"s3://{bucket}/depth-chaos/_segments")
    assert not list_files(f"s3://{bucket}/depth-chaos/_manifests", ("_LEASE.json",))
    outputs = {u.split("/depth-chaos/", 1)[1] for u in list_files(f"s3://{bucket}/depth-chaos")}
    clean_outputs = {
        u.split("/depth-clean/", 1)[1] for u in list_files(f"s3://{bucket}/depth-clean")
    }
    strip = lambda names: {n for n in names if not n.startswith("_manifests/manifest-")}  # noqa: E731
    assert strip(outputs) == strip(clean_outputs)


def test_image_sequence_folders_in_s3_are_videos_with_their_frame_numbers(
    s3_endpoint, ray_cluster, tmp_path
):
    bucket = f"plates-{uuid.uuid4().hex[:10]}"
    s3 = boto3.client("s3", endpoint_url=s3_endpoint)
    s3.create_bucket(Bucket=bucket)
    # two shots: with scene_cuts on, the cut at frame 20 goes into the manifest
    frames = shot_frames(20, 28, 42, 40) + shot_frames(10, 28, 42, 220, flip=True)
    for i, frame in enumerate(frames):  # shot_010/shot_010.1001.png ... (natural order)
        _, png = cv2.imencode(".png", frame[..., ::-1])
        s3.put_object(
            Bucket=bucket, Key=f"videos/shot_010/shot_010.{1001 + i}.png", Body=png.tobytes()
        )
    s3.put_object(Bucket=bucket, Key="videos/shot_010/sequence.json", Body=b'{"fps": 25}')
    checkpoint = tmp_path / "tiny.ckpt"
    save_checkpoint(tiny_model(seed=41), checkpoint)
    s3.upload_file(str(checkpoint), bucket, "models/tiny.ckpt")
    config = _config(bucket, "depth", tmp_path, sequences=True, scene_cuts={"enabled": True})
    result = run_infer(config, progress=lambda _: None)
    assert [(row.video_id, row.status, row.frames) for row in result.rows] == [
        ("shot_010", "done", 30)
    ]
    assert result.rows[0].scene_cuts == [20]
    depth, index = _depth(bucket, "depth/shot_010")
    assert index.tolist() == list(range(1001, 1031))
    meta = json.loads(read_bytes(f"s3://{bucket}/depth/shot_010/metadata.json"))
    assert meta["fps"] == 25 and meta["frame_numbers"] == "source"
    engine = StreamingDepthEngine(tiny_model(seed=41), InferenceConfig(input_size=28))
    expected = np.concatenate(  # each shot its own chain
        [np.stack([d for _, d in engine.run(iter(shot))]) for shot in (frames[:20], frames[20:])]
    )
    assert meta["scene_cuts"] == [20]
    assert np.abs(depth.astype(np.float32) - expected).max() <= 2e-3 * max(
        1.0, np.abs(expected).max()
    )
