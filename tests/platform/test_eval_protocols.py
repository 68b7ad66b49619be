"""Official benchmark protocols: presets, frame matching, official TAE, metric scoring.

The unit tests check each preset's numbers against the official `benchmark/`
code by hand; the integration tests apply them to synthetic data sets made
to the presets' sizes and lengths, through `vda eval` as a Ray job.
"""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest

from vda.model.metrics import evaluate_sequence, temporal_alignment_error
from vda.platform.core.config import build
from vda.platform.data.pipeline import read_manifest
from vda.platform.data.prepare import PrepareConfig, SyntheticOptions, prepare
from vda.platform.eval.config import EvalConfig
from vda.platform.eval.job import run_eval
from vda.platform.eval.outputs import FrameMatchError, PredictedFrames, fit_size, read_sequence
from vda.platform.eval.protocols import PRESETS, Crop, ProtocolError, preset

# (protocol, benchmark): (official frame size, scored size, frames of a long sequence ->
# positions the model sees, positions scored, depth cap); from eval.py / eval_tae.py /
# dataset_extract_*.py by hand
EXPECTED = {
    ("official-110", "sintel"): ((436, 1024), (436, 1024), 50, range(0, 50), range(0, 50), 70),
    ("official-110", "kitti"): ((375, 1242), (374, 1242), 800, range(0, 110), range(0, 110), 80),
    ("official-110", "bonn"): ((480, 640), (480, 640), 600, range(30, 140), range(30, 140), 10),
    ("official-110", "scannet"): (
        (480, 640),
        (464, 618),
        510,
        range(0, 270, 3),
        range(0, 270, 3),
        10,
    ),
    ("official-500", "kitti"): ((375, 1242), (374, 1242), 800, range(0, 500), range(0, 500), 80),
    ("official-500", "bonn"): ((480, 640), (480, 640), 600, range(0, 500), range(0, 500), 10),
    ("official-500", "scannet"): ((480, 640), (464, 618), 510, range(0, 500), range(0, 500), 10),
    ("official-500", "nyuv2"): ((480, 640), (426, 560), 700, range(0, 500), range(0, 500), 10),
    ("official-tae", "scannet"): ((480, 640), (464, 618), 510, range(0, 192), range(10, 180), 10),
}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_protocol_preset_numbers_match_the_official_code(key):
    full, scored_size, count, seen, scored, cap = EXPECTED[key]
    found = preset(*key)
    assert found.crop.shape(*full) == scored_size
    assert found.crop.apply(np.zeros(full)).shape == scored_size
    infer = found.infer.positions(count)
    assert infer == list(seen)
    assert [infer[i] for i in found.score.positions(len(infer))] == list(scored)
    assert found.max_depth == cap and found.source
    assert found.tae == (key[0] == "official-tae")
    assert found.crop_input == (key[0] != "official-tae")  # TAE: whole frame, hard crop


def test_protocol_covers_exactly_the_official_scripts_and_refuses_the_rest():
    assert len(PRESETS) == len(EXPECTED)
    # eval.sh has no NYUv2, eval_500.sh no Sintel, eval_tae.sh only ScanNet
    for protocol, benchmark in [
        ("official-110", "nyuv2"),
        ("official-500", "sintel"),
        ("official-tae", "kitti"),
    ]:
        with pytest.raises(ProtocolError, match=f"no {protocol} evaluation of"):
            preset(protocol, benchmark)
    with pytest.raises(ProtocolError, match="choose from"):
        preset("official-1000", "kitti")
    assert preset("official-500", "NYU_v2").benchmark == "nyuv2"


def test_crop_moves_the_principal_point_and_keeps_focal_lengths():
    k = np.array([[500.0, 0, 320], [0, 500.0, 240], [0, 0, 1]])
    cropped = Crop(8, -8, 11, -11).intrinsics(k[None])[0]
    assert cropped[0, 2] == 309 and cropped[1, 2] == 232 and cropped[0, 0] == 500


def test_official_tae_counts_empty_pairs_as_zero_over_2_n_minus_1():
    """Three frames: 0 and 1 share a pose with depths 2 and 2.2; frame 2 looks backwards,
    so no point of its neighbour lands in front of it. By hand:
    forward |2.2 - 2| / 2.2, backward |2 - 2.2| / 2, the empty pair 0 + 0."""
    k = np.array([[20.0, 0, 8], [0, 20.0, 6], [0, 0, 1]])
    depths = [np.full((12, 16), 2.0), np.full((12, 16), 2.2), np.full((12, 16), 2.0)]
    turned = np.diag([-1.0, 1.0, -1.0, 1.0])
    poses = [np.eye(4), np.eye(4), turned]
    forward, backward = 0.2 / 2.2, 0.2 / 2.0
    official = temporal_alignment_error(depths, k, poses, variant="official")
    assert official == pytest.approx(100 * (forward + backward) / 4, rel=1e-9)
    project = temporal_alignment_error(depths, k, poses, variant="project")
    assert project == pytest.approx(100 * (forward + backward) / 2, rel=1e-9)


def _loop_reference(depth, k, relative):
    """eval_tae.py's projection written pixel by pixel (raster order, last write wins)."""
    fx, fy, cx, cy = k[0, 0], k[1, 1], k[0, 2], k[1, 2]
    out = np.zeros_like(depth)
    winners = {}
    for v in range(depth.shape[0]):
        for u in range(depth.shape[1]):
            z = depth[v, u]
            point = relative[:3, :3] @ np.array([(u - cx) * z / fx, (v - cy) * z / fy, z])
            point = point + relative[:3, 3]
            x, y = round(point[0] * fx / point[2] + cx), round(point[1] * fy / point[2] + cy)
            if 0 <= x < depth.shape[1] and 0 <= y < depth.shape[0]:
                out[y, x] = point[2]
                winners.setdefault((y, x), []).append(point[2])
    return out, winners


def test_official_tae_projection_lets_the_last_point_win_a_pixel_not_the_nearest():
    from vda.model.metrics import reproject_depth, reproject_depth_official

    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 3.0, (9, 12))
    k = np.array([[10.0, 0, 6], [0, 10.0, 4.5], [0, 0, 1]])
    relative = np.eye(4)
    relative[:3, 3] = [0.3, -0.1, 0.8]  # forward: several points crowd onto one pixel
    official = reproject_depth_official(depth, k, relative)
    reference, winners = _loop_reference(depth, k, relative)
    np.testing.assert_allclose(official, reference, rtol=1e-12)
    crowded = [(p, zs) for p, zs in winners.items() if len(zs) > 1 and zs[-1] != min(zs)]
    assert crowded, "the scene must put a farther point last on some pixel"
    nearest = reproject_depth(depth, k, relative, k, np.eye(4))  # c2w_dst = I
    for (y, x), zs in crowded:
        assert official[y, x] == pytest.approx(zs[-1]) and nearest[y, x] == pytest.approx(min(zs))


def test_metric_depth_is_scored_without_alignment_by_hand():
    gt = np.full((2, 4, 5), 2.0)
    prediction = gt * 1.1  # 10 % too far everywhere
    metric = evaluate_sequence(prediction, gt, 10.0, alignment="none")
    assert metric.abs_rel == pytest.approx(0.1) and metric.delta1 == 1.0
    assert metric.rmse == pytest.approx(0.2) and (metric.scale, metric.shift) == (1.0, 0.0)
    aligned = evaluate_sequence(1.0 / prediction, gt, 10.0)  # as relative: exact after the fit
    assert aligned.abs_rel == pytest.approx(0.0, abs=1e-9)


def test_frame_index_matching_refuses_missing_and_stray_frames():
    frames = PredictedFrames(
        np.array([0, 3, 6]),
        np.arange(3, dtype=np.float32)[:, None, None] * np.ones((3, 2, 2), np.float32),
        metric=False,
    )
    known = set(range(9))
    assert frames.frames([6, 0], known, "s")[:, 0, 0].tolist() == [2.0, 0.0]
    with pytest.raises(FrameMatchError, match="no depth for 1 of the 3 frames"):
        frames.frames([0, 3, 4], known, "s")
    with pytest.raises(FrameMatchError, match="ground truth does not have"):
        frames.frames([0], {0, 3}, "s")
    with pytest.raises(FrameMatchError, match="incomplete"):
        PredictedFrames(frames.numbers, frames.depth, False, expected=4).check_complete("s")


def test_size_mismatch_is_cropped_resized_or_refused():
    crop = Crop(8, -8, 11, -11)
    full = np.ones((2, 48, 64), np.float32)
    assert fit_size(full, (48, 64), crop, "refuse", "s")[0].shape == (2, 32, 42)
    half = np.ones((2, 24, 32), np.float32)
    resized, note = fit_size(half, (48, 64), crop, "resize", "s")
    assert resized.shape == (2, 32, 42) and "resized from 24x32" in note
    with pytest.raises(FrameMatchError, match="size_mismatch=refuse"):
        fit_size(half, (48, 64), crop, "refuse", "s")
    with pytest.raises(FrameMatchError, match="aspect ratio differs"):
        fit_size(np.ones((2, 30, 30), np.float32), (48, 64), crop, "resize", "s")


# -- through the Ray job, on synthetic sets made to the presets' sizes ---------------------
@pytest.fixture(scope="module")
def scannet_like(tmp_path_factory, ray_cluster):
    """A 'scannet' data set long enough for both ScanNet presets (300 frames, with poses)."""
    data = tmp_path_factory.mktemp("protocols") / "scannet"
    prepare(
        PrepareConfig(
            dst=str(data),
            dataset="scannet",
            chunk_frames=100,
            synthetic=SyntheticOptions(sequences=1, frames=300, height=40, width=60, seed=3),
        ),
        progress=lambda _: None,
    )
    return str(data)


def _write_outputs(folder, numbers, depth, metric=False):
    folder.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        folder / "depth.npz", depth=depth.astype(np.float32), frame_index=np.asarray(numbers)
    )
    kind = "metric_depth_m" if metric else "relative_disparity"
    (folder / "metadata.json").write_text(json.dumps({"frames": len(numbers), "depth_kind": kind}))


def _eval(tmp_path, dataset, outputs, name, **extra):
    config = build(
        EvalConfig,
        {
            "name": name,
            "dataset": dataset,
            "outputs": str(outputs),
            "report": str(tmp_path / "reports"),
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
            **extra,
        },
    )
    return run_eval(config, progress=lambda _: None)


@pytest.mark.integration
def test_protocol_frames_crop_and_tae_on_a_scannet_sized_set(tmp_path, scannet_like):
    entry = read_manifest(scannet_like)["sequences"][0]
    assert read_manifest(scannet_like)["benchmark"] == "scannet"
    data = read_sequence(scannet_like, entry)
    disparity = np.where(data.valid, 1.0 / np.where(data.valid, data.depth, 1.0), 0.0)
    rng = np.random.default_rng(0)
    # exact (up to one scale and shift) on the frames official-110 scores, noise elsewhere
    chosen = list(range(0, 270, 3))
    prediction = rng.uniform(0.01, 1.0, disparity.shape)
    prediction[chosen] = 2 * disparity[chosen] + 0.25
    _write_outputs(tmp_path / "out" / entry["sequence"], range(300), prediction)
    report = _eval(tmp_path, scannet_like, tmp_path / "out", "p110", protocol="official-110")
    values = report.modes["outputs"]["sequences"][entry["sequence"]]
    assert report.protocol["protocol"] == "official-110" and report.max_depth == 10.0
    assert values["frames"] == 90 and values["abs_rel"] < 1e-5  # only the chosen frames count
    assert "tae" not in values  # eval.py computes no TAE
    whole = _eval(tmp_path, scannet_like, tmp_path / "out", "whole")
    assert whole.modes["outputs"]["sequences"][entry["sequence"]]["abs_rel"] > 0.1

    # official-tae: frames 10-179 of 0-191, prediction hard-cropped, K not moved by the crop
    exact = 2 * disparity + 0.25
    _write_outputs(tmp_path / "tae" / entry["sequence"], range(300), exact)
    tae = _eval(tmp_path, scannet_like, tmp_path / "tae", "tae", protocol="official-tae")
    values = tae.modes["outputs"]["sequences"][entry["sequence"]]
    crop, frames = Crop(8, -8, 11, -11), list(range(10, 180))
    expected = evaluate_sequence(
        crop.apply(exact[frames]),
        crop.apply(data.depth[frames]),
        10.0,
        masks=crop.apply(data.valid[frames]),
        intrinsics=data.intrinsics[frames],
        c2w=list(data.c2w[frames]),
        tae_variant="official",
    )
    assert values["frames"] == 170 and values["tae"] == pytest.approx(expected.tae, rel=1e-6)
    assert tae.tae_variant == "official" and 0 < values["tae"] < 5


@pytest.mark.integration
def test_protocol_nyuv2_crop_cap_and_scenes_on_a_full_size_frame(tmp_path, ray_cluster):
    """NYUv2 at 480 x 640: GT 2 m in the crop (with a 10 x 10 block at 12 m, over the 10 m
    cap) and 3 m on the border; metric outputs 10 % too far inside the crop, exact outside.
    By hand: official-500 scores AbsRel 0.1 exactly; with no protocol the border counts,
    0.1 * (426 * 560 - 100) / (480 * 640 - 100)."""
    src = tmp_path / "raw" / "kitchen_0003"
    gt = np.full((480, 640), 3.0, np.float32)
    gt[45:471, 41:601] = 2.0
    gt[100:110, 100:110] = 12.0
    (src / "rgb").mkdir(parents=True)
    (src / "depth").mkdir()
    for stem in ("frame_0001", "frame_0002"):
        cv2.imwrite(str(src / "rgb" / f"{stem}.png"), np.full((480, 640, 3), 90, np.uint8))
        np.save(src / "depth" / f"{stem}.npy", gt)
    prepare(
        PrepareConfig(
            layout="npy", src=str(tmp_path / "raw"), dst=str(tmp_path / "nyu"), benchmark="nyuv2"
        ),
        progress=lambda _: None,
    )
    manifest = read_manifest(str(tmp_path / "nyu"))
    assert manifest["benchmark"] == "nyuv2"
    assert manifest["sequences"][0]["frame_numbers"] == [1, 2]  # from the file names
    prediction = gt.copy()
    prediction[45:471, 41:601] *= 1.1
    out = tmp_path / "out" / "kitchen_0003"
    _write_outputs(out, [1, 2], np.stack([prediction] * 2), metric=True)
    report = _eval(
        tmp_path, str(tmp_path / "nyu"), tmp_path / "out", "nyu", protocol="official-500"
    )
    metric = report.modes["outputs/metric"]["overall"]
    assert metric["abs_rel"] == pytest.approx(0.1, rel=1e-5) and metric["delta1"] == 1.0
    assert "no alignment" in report.modes["outputs/metric"]["label"]
    assert "outputs/aligned" in report.modes
    assert any("lacks" in note and "basement_0001a" in note for note in report.notes)
    plain = _eval(tmp_path, str(tmp_path / "nyu"), tmp_path / "out", "nyu-plain")
    by_hand = 0.1 * (426 * 560 - 100) / (480 * 640 - 100)
    assert plain.modes["outputs/metric"]["overall"]["abs_rel"] == pytest.approx(by_hand, rel=1e-5)
    # outputs numbered by position (0, 1) are not the frames 1, 2 of the ground truth
    _write_outputs(out, [0, 1], np.stack([prediction] * 2), metric=True)
    wrong = _eval(tmp_path, str(tmp_path / "nyu"), tmp_path / "out", "nyu-wrong")
    assert "ground truth does not have" in wrong.failed["kitchen_0003"]
