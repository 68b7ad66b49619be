"""EXR and point-cloud outputs, and scene cuts restarting the window chain."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import tiny_model
from plyfile import PlyData
from videos import shot_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.model.inference import InferenceConfig, StreamingDepthEngine
from vda.platform.video.decode import VideoInfo
from vda.platform.video.pointcloud import Intrinsics, read_exr, unproject
from vda.platform.video.scenes import CutDetector, SceneCutOptions, ShotRunner
from vda.platform.video.writers import DepthOutputs, OutputOptions


def _info(name="shot_010.mp4", height=30, width=40, source=None):
    sh, sw = source or (height, width)
    return VideoInfo(name, width, height, sw, sh, 24.0, 24.0, 1, 0, "h264", 10)


def test_exr_outputs_round_trip_per_frame_with_the_video_name(tmp_path):
    rng = np.random.default_rng(0)
    depths = [rng.random((30, 40), dtype=np.float32) * 5 for _ in range(3)]
    for half in (False, True):
        folder = tmp_path / ("half" if half else "full")
        outputs = DepthOutputs(
            folder, _info(), OutputOptions(exr=True, exr_half=half, preview=False)
        )
        for i, depth in enumerate(depths):
            outputs.write(i + 100, depth)
        files = outputs.close()
        assert [f for f in files if f.endswith(".exr")] == [
            f"exr/shot_010_{i:06d}.exr" for i in (100, 101, 102)
        ]
        back = read_exr(folder / "exr" / "shot_010_000101.exr")
        assert back.dtype == (np.float16 if half else np.float32)
        tolerance = 5e-3 if half else 0.0
        assert np.abs(back.astype(np.float32) - depths[1]).max() <= tolerance


def test_point_cloud_of_a_plane_is_planar_at_the_right_distance(tmp_path):
    """A plane n . X = d seen by a pinhole camera: depth z(u, v) = d / (n . ray(u, v))."""
    fx = fy = 50.0
    height, width = 30, 40
    normal = np.array([0.2, -0.1, 1.0])
    normal /= np.linalg.norm(normal)
    distance = 3.0
    v, u = np.mgrid[0:height, 0:width].astype(np.float64)
    rays = np.stack([(u - (width - 1) / 2) / fx, (v - (height - 1) / 2) / fy, np.ones_like(u)], -1)
    depth = (distance / (rays @ normal)).astype(np.float32)
    rgb = np.full((height, width, 3), (10, 200, 30), np.uint8)
    # the source video was twice as large: the intrinsics given for it are scaled down
    options = OutputOptions(ply=True, ply_every=2, preview=False, focal_length_x=2 * fx)
    outputs = DepthOutputs(tmp_path, _info(source=(60, 80)), options, metric=True)
    for i in range(3):
        outputs.write(i, depth, rgb)
    files = outputs.close()
    assert [f for f in files if f.endswith(".ply")] == [
        "ply/shot_010_000000.ply",
        "ply/shot_010_000002.ply",
    ]
    vertex = PlyData.read(str(tmp_path / "ply" / "shot_010_000002.ply"))["vertex"]
    points = np.stack([vertex["x"], vertex["y"], vertex["z"]], -1).astype(np.float64)
    assert len(points) == height * width
    np.testing.assert_allclose(points @ normal, distance, rtol=1e-5)  # on the plane, at d
    assert set(vertex["green"].tolist()) == {200}
    meta = json.loads((tmp_path / "metadata.json").read_text())
    assert meta["intrinsics"]["fx"] == pytest.approx(fx)


def test_point_clouds_refuse_relative_depth_and_missing_intrinsics(tmp_path):
    with pytest.raises(ValueError, match="need metric depth"):
        DepthOutputs(tmp_path, _info(), OutputOptions(ply=True, focal_length_x=50.0))
    with pytest.raises(ValueError, match="need intrinsics"):
        DepthOutputs(tmp_path, _info(), OutputOptions(ply=True), metric=True)
    assert unproject(np.ones((2, 2), np.float32), Intrinsics(1.0, 1.0)).shape == (4, 3)


def _shot(count, height, width, colour, flip=False):
    return shot_frames(count, height, width, colour, flip)


@pytest.fixture(scope="module")
def model():
    return tiny_model(seed=51)


def test_scene_cuts_restart_the_window_chain(model):
    first, second = _shot(33, 28, 42, 40), _shot(40, 28, 42, 220, flip=True)
    config = InferenceConfig(input_size=28)
    alone = np.stack([d for _, d in StreamingDepthEngine(model, config).run(iter(second))])
    engine = StreamingDepthEngine(model, config)
    runner = ShotRunner(engine, CutDetector(SceneCutOptions(enabled=True), fps=24))
    out = list(runner.run(iter(first + second)))
    assert [i for i, _ in out] == list(range(73))
    assert runner.cuts == [33]
    with_cuts = np.stack([d for _, d in out[33:]])
    assert np.abs(with_cuts - alone).max() <= 1e-6 * np.ptp(alone)
    without = np.stack(
        [d for _, d in StreamingDepthEngine(model, config).run(iter(first + second))]
    )
    assert np.abs(without[33:] - alone).max() > 1e-3 * np.ptp(alone)  # the difference is real


def test_depth_job_with_scene_cuts_and_exr(tmp_path):
    checkpoint = tmp_path / "tiny.ckpt"
    save_checkpoint(tiny_model(seed=52), checkpoint)
    video = write_mp4v(
        tmp_path / "spliced.mp4", _shot(33, 28, 42, 40) + _shot(30, 28, 42, 220, True)
    )
    code = main(
        [
            "depth",
            str(video),
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(tmp_path / "out"),
            "--input-size",
            "28",
            "--scene-cuts",
            "--exr",
            "--no-preview",
        ]
    )
    assert code == 0
    folder = tmp_path / "out" / "spliced"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["scene_cuts"] == [33]
    assert len(list((folder / "exr").glob("spliced_*.exr"))) == 63
    # a relative model asked for point clouds: one clear failure, exit 1
    code = main(
        [
            "depth",
            str(video),
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(tmp_path / "out2"),
            "--input-size",
            "28",
            "--ply",
            "--focal-length-x",
            "40",
        ]
    )
    assert code == 1


def test_infer_refuses_point_clouds_from_a_relative_checkpoint_before_any_work(tmp_path):
    from vda.platform.core.config import ConfigError, build
    from vda.platform.infer.config import InferConfig
    from vda.platform.infer.job import run_infer

    (tmp_path / "videos").mkdir()
    write_mp4v(tmp_path / "videos" / "a.mp4", shot_frames(4, 28, 42, colour=90), fps=10)
    save_checkpoint(tiny_model(seed=1), tmp_path / "relative.pt")
    config = build(
        InferConfig,
        {
            "input": str(tmp_path / "videos"),
            "output": str(tmp_path / "out"),
            "checkpoint": str(tmp_path / "relative.pt"),
            "outputs": {"ply": True, "focal_length_x": 30.0, "focal_length_y": 30.0},
        },
    )
    with pytest.raises(ConfigError, match="point clouds need metric depth"):
        run_infer(config, progress=lambda _: None)
    assert (
        not (tmp_path / "out" / "a").exists()
        and not (tmp_path / "out" / "manifest.parquet").exists()
    )
