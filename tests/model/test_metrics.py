"""Metrics: sequence alignment, AbsRel / delta1 / RMSE, TAE, intrinsics helpers."""

from __future__ import annotations

import numpy as np
import pytest

from vda.model.metrics import (
    crop_intrinsics,
    depth_cap,
    evaluate_sequence,
    mean_over_sequences,
    reproject_depth,
    resize_intrinsics,
    temporal_alignment_error,
)

K = np.array([[20.0, 0.0, 7.5], [0.0, 20.0, 5.5], [0.0, 0.0, 1.0]])


def _pose(tx=0.0, ty=0.0, tz=0.0):
    pose = np.eye(4)
    pose[:3, 3] = (tx, ty, tz)
    return pose


def test_hand_computed_metrics_on_three_constant_frames():
    # GT depth 1, 2, 4 (disparity 1, 1/2, 1/4); predicted disparity 1, 1/2, 1/2.
    # Equal pixel counts, so the fit is over three values: mean p = 2/3, mean g = 7/12,
    # var p = 1/18, cov = 5/72 -> scale 5/4, shift -1/4 -> aligned 1, 3/8, 3/8,
    # depth 1, 8/3, 8/3. AbsRel per frame 0, 1/3, 1/3; delta1 1, 0, 0 (ratios 4/3
    # and 3/2 exceed 1.25); RMSE 0, 2/3, 4/3.
    gt = np.stack([np.full((4, 4), d) for d in (1.0, 2.0, 4.0)])
    pred = np.stack([np.full((4, 4), p) for p in (1.0, 0.5, 0.5)])
    result = evaluate_sequence(pred, gt, max_depth=10.0)
    assert result.scale == pytest.approx(1.25, abs=1e-12)
    assert result.shift == pytest.approx(-0.25, abs=1e-12)
    assert result.abs_rel == pytest.approx(2 / 9, abs=1e-6)
    assert result.delta1 == pytest.approx(1 / 3, abs=1e-6)
    assert result.rmse == pytest.approx(2 / 3, abs=1e-6)
    assert result.frames == 3


def test_invalid_ground_truth_is_ignored():
    gt = np.stack([np.full((4, 4), d) for d in (1.0, 2.0, 4.0)])
    pred = np.stack([np.full((4, 4), p) for p in (1.0, 0.5, 0.5)])
    noisy_gt, noisy_pred = gt.copy(), pred.copy()
    noisy_gt[:, 0, 0] = 0.0  # no measurement
    noisy_gt[:, 1, 1] = 50.0  # beyond the cap
    noisy_pred[:, 0, 0] = 99.0
    noisy_pred[:, 1, 1] = 0.001
    mask = np.ones_like(gt, dtype=bool)
    mask[:, 3, 3] = False
    noisy_pred[:, 3, 3] = 42.0
    result = evaluate_sequence(noisy_pred, noisy_gt, max_depth=10.0, masks=mask)
    assert result.abs_rel == pytest.approx(2 / 9, abs=1e-6)
    assert result.delta1 == pytest.approx(1 / 3, abs=1e-6)


def test_affine_disparity_prediction_scores_perfectly():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0.5, 8.0, size=(3, 4, 4))
    pred = 3.0 / gt + 0.2  # disparity times a constant plus a shift
    result = evaluate_sequence(pred, gt, max_depth=10.0)
    assert result.abs_rel == pytest.approx(0.0, abs=1e-9)
    assert result.delta1 == 1.0
    assert result.rmse == pytest.approx(0.0, abs=1e-9)


def test_frames_without_valid_pixels_are_skipped_and_all_invalid_is_an_error():
    gt = np.stack([np.full((4, 4), d) for d in (1.0, 0.0, 4.0)])
    pred = np.stack([np.full((4, 4), p) for p in (1.0, 0.3, 0.25)])
    result = evaluate_sequence(pred, gt, max_depth=10.0)
    assert result.frames == 2 and np.isfinite(result.abs_rel)
    with pytest.raises(ValueError, match="no valid pixels"):
        evaluate_sequence(pred, np.zeros_like(gt), max_depth=10.0)


def test_tae_is_zero_for_exact_depth_of_a_static_scene():
    # A fronto-parallel wall at z = 5; the camera moves 1 forward: exact depth 5, then 4.
    depths = [np.full((12, 16), 5.0), np.full((12, 16), 4.0)]
    poses = [_pose(), _pose(tz=1.0)]
    assert temporal_alignment_error(depths, K, poses) == pytest.approx(0.0, abs=1e-9)
    sideways = [np.full((12, 16), 5.0), np.full((12, 16), 5.0)]
    assert temporal_alignment_error(sideways, K, [_pose(), _pose(tx=0.5)]) == pytest.approx(
        0.0, abs=1e-9
    )


def test_tae_hand_computed_for_a_perturbed_frame():
    # Frame 1's depth is 10% too far (4.4 instead of 4). Forward: frame 0 lands at
    # depth 4 against 4.4 -> 0.4 / 4.4. Backward: frame 1 lands at 5.4 against 5 -> 0.08.
    depths = [np.full((12, 16), 5.0), np.full((12, 16), 4.4)]
    tae = temporal_alignment_error(depths, K, [_pose(), _pose(tz=1.0)])
    assert tae == pytest.approx(100 * (0.4 / 4.4 + 0.08) / 2, abs=1e-6)


def test_tae_of_a_tilted_plane_is_near_zero_and_uses_camera_to_world_poses():
    height, width = 12, 16
    _, u = np.mgrid[0:height, 0:width]

    def plane_depth(camera_x):
        # plane z = 5 + 0.1 * x_world seen from a camera at (camera_x, 0, 0)
        ray_x = (u - K[0, 2]) / K[0, 0]
        return (5 + 0.1 * camera_x) / (1 - 0.1 * ray_x)

    depths = [plane_depth(0.0), plane_depth(0.3)]
    good = temporal_alignment_error(depths, K, [_pose(), _pose(tx=0.3)])
    swapped = temporal_alignment_error(depths, K, [_pose(), _pose(tx=-0.3)])
    assert good < 0.5  # nearest-pixel splatting on a slanted surface: sub-percent
    assert swapped > good


def test_reprojection_z_buffer_keeps_the_nearest_surface():
    depth = np.full((12, 16), 5.0)
    same = reproject_depth(depth, K, _pose(), K, _pose())
    np.testing.assert_allclose(same, depth)
    far_away = reproject_depth(depth, K, _pose(), K, _pose(tx=1000.0))
    assert not far_away.any()  # nothing lands in view


def test_resized_intrinsics_project_points_where_the_resized_image_has_them():
    point = np.array([0.3, -0.2, 2.0])
    original = K @ point
    u, v = original[:2] / original[2]
    k2 = resize_intrinsics(K, (12, 16), (24, 40))
    moved = k2 @ point
    # pixel-centre mapping of the continuous coordinate: u' = (u + 0.5) * s - 0.5
    assert moved[0] / moved[2] == pytest.approx((u + 0.5) * 40 / 16 - 0.5)
    assert moved[1] / moved[2] == pytest.approx((v + 0.5) * 24 / 12 - 0.5)
    cropped = crop_intrinsics(K, top=2, left=3) @ point
    assert cropped[0] / cropped[2] == pytest.approx(u - 3)
    assert cropped[1] / cropped[2] == pytest.approx(v - 2)


def test_tae_runs_inside_evaluate_sequence_on_aligned_depth():
    depths = np.stack([np.full((12, 16), 5.0), np.full((12, 16), 4.0)])
    pred = 2.0 / depths + 1.0  # affine disparity: aligned depth is exact
    result = evaluate_sequence(
        pred, depths, max_depth=10.0, intrinsics=K, c2w=[_pose(), _pose(tz=1)]
    )
    assert result.tae == pytest.approx(0.0, abs=1e-6)
    assert result.as_dict()["tae"] == result.tae


def test_depth_caps_table_and_manifest_override():
    assert depth_cap("KITTI") == 80.0
    assert depth_cap("sintel") == 70.0
    assert depth_cap("scannet") == depth_cap("bonn") == depth_cap("nyuv2") == 10.0
    assert depth_cap("synthetic", manifest_cap=25.0) == 25.0
    with pytest.raises(KeyError, match="max_depth in its manifest"):
        depth_cap("unknown")


def test_data_set_numbers_average_over_sequences():
    gt = np.stack([np.full((4, 4), d) for d in (1.0, 2.0, 4.0)])
    perfect = evaluate_sequence(1.0 / gt, gt, max_depth=10.0)
    off = evaluate_sequence(np.stack([np.full((4, 4), p) for p in (1.0, 0.5, 0.5)]), gt, 10.0)
    summary = mean_over_sequences([perfect, off])
    assert summary["abs_rel"] == pytest.approx((0 + 2 / 9) / 2, abs=1e-6)
    assert summary["sequences"] == 2
