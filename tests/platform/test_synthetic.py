"""The synthetic generator: exact depth, determinism, motion, poses."""

from __future__ import annotations

import numpy as np

from vda.model.metrics import temporal_alignment_error
from vda.platform.data.synthetic import SyntheticConfig, SyntheticScene


def _scene(seed=0, **overrides):
    config = SyntheticConfig(frames=6, height=24, width=32, **overrides)
    return SyntheticScene(config, seed)


def test_floor_depth_is_exact_for_the_plane():
    scene = _scene()
    scene.planes = [p for p in scene.planes if p.normal[1] == -1]  # only the floor, y = +1.5
    scene.boxes, scene.spheres = [], []
    frame = scene.render(3)
    k_inv = np.linalg.inv(frame.intrinsics)
    rotation, origin = frame.c2w[:3, :3], frame.c2w[:3, 3]
    checked = 0
    for v in range(24):
        for u in range(32):
            ray = rotation @ (k_inv @ np.array([u, v, 1.0]))  # camera z = 1
            if ray[1] <= 1e-9:
                assert not frame.valid[v, u]  # looking up: the floor is never hit
                continue
            expected = (1.5 - origin[1]) / ray[1]  # where origin + t * ray meets y = 1.5
            x, _, z = origin + expected * ray
            if abs(x) <= 4.0 and -1.0 <= z <= 24.0:  # the floor ends with the room
                assert frame.depth[v, u] == np.float32(expected)
                checked += 1
            else:
                assert not frame.valid[v, u]
    assert checked > 100


def test_back_projected_depth_lies_on_the_room_surfaces():
    frame = _scene(boxes=0, spheres=0).render(0)
    v, u = np.nonzero(frame.valid)
    points_cam = (
        np.linalg.inv(frame.intrinsics) @ np.stack([u, v, np.ones_like(u)]) * frame.depth[v, u]
    )
    points = frame.c2w[:3, :3] @ points_cam + frame.c2w[:3, 3:4]
    width, height, depth = SyntheticConfig().room
    on_surface = (
        np.isclose(np.abs(points[0]), width / 2, atol=1e-3)
        | np.isclose(np.abs(points[1]), height / 2, atol=1e-3)
        | np.isclose(points[2], depth, atol=1e-3)
        | np.isclose(points[2], -1.0, atol=1e-3)
    )
    assert on_surface.all()


def test_deterministic_from_seed_and_different_across_seeds():
    a, b, c = _scene(1).render(2), _scene(1).render(2), _scene(2).render(2)
    assert np.array_equal(a.rgb, b.rgb) and np.array_equal(a.depth, b.depth)
    assert not np.array_equal(a.depth, c.depth)


def test_open_far_side_gives_invalid_sky():
    frame = SyntheticScene(SyntheticConfig(height=24, width=32, open_far_side=True), 0).render(0)
    assert 0 < (~frame.valid).mean() < 0.5
    assert (frame.depth[~frame.valid] == 0).all()
    closed = SyntheticScene(SyntheticConfig(height=24, width=32), 0).render(0)
    assert closed.valid.all()


def test_poses_are_rigid_and_the_camera_moves():
    scene = _scene()
    poses = [scene.pose(t) for t in range(6)]
    for pose in poses:
        np.testing.assert_allclose(pose[:3, :3] @ pose[:3, :3].T, np.eye(3), atol=1e-12)
    assert np.linalg.norm(poses[5][:3, 3] - poses[0][:3, 3]) > 0.2


def test_long_sequences_stay_inside_the_room():
    scene = SyntheticScene(SyntheticConfig(frames=2000, height=8, width=8), 0)
    z = [scene.pose(t)[2, 3] for t in range(0, 2000, 7)]
    assert min(z) > -1 and max(z) < SyntheticConfig().room[2]
    assert all(scene.render(t).valid.all() for t in (0, 700, 1999))


def test_exact_static_depth_has_near_zero_tae_and_moving_objects_raise_it():
    static = _scene(3, moving=0)
    frames = [static.render(t) for t in range(4)]
    tae_static = temporal_alignment_error(
        [f.depth for f in frames], frames[0].intrinsics, [f.c2w for f in frames]
    )
    moving = _scene(3, moving=3, spheres=3)
    for sphere in moving.spheres:
        sphere.velocity = sphere.velocity * 20  # fast movers
    frames_m = [moving.render(t) for t in range(4)]
    tae_moving = temporal_alignment_error(
        [f.depth for f in frames_m], frames_m[0].intrinsics, [f.c2w for f in frames_m]
    )
    assert tae_static < 3.0  # nearest-pixel splatting error only
    assert tae_moving > tae_static
