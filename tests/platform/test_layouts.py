"""Raw layout readers on small files written in each exact format."""

from __future__ import annotations

import struct

import cv2
import numpy as np
import pytest

from vda.platform.data.layouts import (
    SINTEL_TAG,
    LayoutError,
    npy_sequences,
    png16_sequences,
    read_sintel_camera,
    read_sintel_depth,
    sintel_sequences,
)


def _rgb(seed, h=6, w=8):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_rgb(path, rgb):
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), rgb[..., ::-1])


def test_png16_layout_kitti_scale_intrinsics_and_poses(tmp_path):
    seq = tmp_path / "drive_01"
    raw = np.array([[0, 256, 512, 65535]] * 6, dtype=np.uint16).repeat(2, axis=1)
    for i in range(3):
        _write_rgb(seq / "rgb" / f"{i:06d}.png", _rgb(i))
        (seq / "depth").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(seq / "depth" / f"{i:06d}.png"), raw)
    (seq / "intrinsics.txt").write_text("100 101 3.5 2.5\n")
    lines = []
    for i in range(3):
        pose = np.eye(4)
        pose[0, 3] = i  # camera i is i metres to the right
        lines.append(" ".join(map(str, pose[:3].ravel())))  # 12 numbers a line
    (seq / "poses.txt").write_text("\n".join(lines))
    (sequence,) = png16_sequences(str(tmp_path), depth_scale=1 / 256)
    frames = list(sequence.frames())
    assert sequence.name == "drive_01" and len(frames) == 3
    np.testing.assert_array_equal(frames[1].rgb, _rgb(1))
    np.testing.assert_allclose(
        frames[0].depth[0, :8], [0, 0, 1, 1, 2, 2, 255.99609375, 255.99609375]
    )
    assert frames[0].valid[0].tolist() == [False, False] + [True] * 6
    assert frames[0].intrinsics[0, 0] == 100 and frames[0].intrinsics[1, 2] == 2.5
    assert frames[2].c2w[0, 3] == 2.0


def test_png16_vkitti_sky_value_is_invalid(tmp_path):
    seq = tmp_path / "scene"
    _write_rgb(seq / "rgb" / "0.png", _rgb(0))
    (seq / "depth").mkdir()
    cv2.imwrite(str(seq / "depth" / "0.png"), np.full((6, 8), 65535, np.uint16))
    (sequence,) = png16_sequences(str(tmp_path), depth_scale=0.01, invalid_value=65535)
    frame = next(sequence.frames())
    assert not frame.valid.any() and (frame.depth == 0).all()


def test_missing_depth_and_size_mismatch_name_the_frame(tmp_path):
    seq = tmp_path / "s"
    _write_rgb(seq / "rgb" / "a.png", _rgb(0))
    _write_rgb(seq / "rgb" / "b.png", _rgb(1))
    (seq / "depth").mkdir()
    cv2.imwrite(str(seq / "depth" / "a.png"), np.ones((6, 8), np.uint16))
    (sequence,) = png16_sequences(str(tmp_path), depth_scale=1.0)
    with pytest.raises(LayoutError, match="frame 'b' has no depth file"):
        list(sequence.frames())
    cv2.imwrite(str(seq / "depth" / "b.png"), np.ones((5, 8), np.uint16))
    (sequence,) = png16_sequences(str(tmp_path), depth_scale=1.0)  # listed anew
    with pytest.raises(LayoutError, match=r"frame 'b' depth \(5, 8\) vs image \(6, 8\)"):
        list(sequence.frames())


def _dpt(depth):
    height, width = depth.shape
    return struct.pack("<fii", SINTEL_TAG, width, height) + depth.astype("<f4").tobytes()


def _cam(k, w2c):
    return (
        struct.pack("<f", SINTEL_TAG) + k.astype("<f8").tobytes() + w2c[:3].astype("<f8").tobytes()
    )


def test_sintel_dpt_and_cam_formats(tmp_path):
    depth = np.arange(48, dtype=np.float32).reshape(6, 8) + 1
    k = np.array([[50.0, 0, 4], [0, 50, 3], [0, 0, 1]])
    w2c = np.eye(4)
    w2c[:3, 3] = [1.0, -2.0, 3.0]
    for name in ("alley_1",):
        for i in (1, 2):
            _write_rgb(tmp_path / "final" / name / f"frame_{i:04d}.png", _rgb(i))
            (tmp_path / "depth" / name).mkdir(parents=True, exist_ok=True)
            (tmp_path / "depth" / name / f"frame_{i:04d}.dpt").write_bytes(_dpt(depth * i))
            (tmp_path / "camdata_left" / name).mkdir(parents=True, exist_ok=True)
            (tmp_path / "camdata_left" / name / f"frame_{i:04d}.cam").write_bytes(_cam(k, w2c))
    (sequence,) = sintel_sequences(str(tmp_path))
    frames = list(sequence.frames())
    np.testing.assert_array_equal(frames[1].depth, depth * 2)
    np.testing.assert_array_equal(frames[0].intrinsics, k)
    # stored world-to-camera, delivered camera-to-world
    np.testing.assert_allclose(frames[0].c2w[:3, 3], [-1.0, 2.0, -3.0])
    with pytest.raises(LayoutError, match=r"wrong \.dpt tag"):
        read_sintel_depth(struct.pack("<fii", 1.0, 1, 1) + b"\0" * 4)
    with pytest.raises(LayoutError, match="data bytes"):
        read_sintel_depth(_dpt(depth)[:-4])
    with pytest.raises(LayoutError, match=r"not a \.cam file"):
        read_sintel_camera(b"\0" * 10)


def test_npy_and_npz_depth(tmp_path):
    seq = tmp_path / "room"
    depth = np.linspace(0.5, 3, 48, dtype=np.float32).reshape(6, 8)
    depth[0, 0] = np.nan
    _write_rgb(seq / "rgb" / "0.png", _rgb(0))
    _write_rgb(seq / "rgb" / "1.png", _rgb(1))
    (seq / "depth").mkdir()
    np.save(seq / "depth" / "0.npy", depth)
    np.savez(seq / "depth" / "1.npz", depth=depth * 2)
    (sequence,) = npy_sequences(str(tmp_path))
    a, b = list(sequence.frames())
    assert not a.valid[0, 0] and a.depth[0, 0] == 0
    np.testing.assert_allclose(b.depth[1:], depth[1:] * 2)


def test_intrinsics_files_in_each_layout_a_benchmark_uses():
    from vda.platform.data.layouts import LayoutError, parse_intrinsics

    expected = np.array([[577.6, 0, 319.5], [0, 578.7, 239.5], [0, 0, 1]])
    scannet = "577.6 0 319.5 0\n0 578.7 239.5 0\n0 0 1 0\n0 0 0 1\n"  # intrinsic_depth.txt
    np.testing.assert_array_equal(parse_intrinsics(scannet), expected)
    np.testing.assert_array_equal(parse_intrinsics("577.6 578.7 319.5 239.5"), expected)
    with pytest.raises(LayoutError, match="9, 16 or 4 numbers"):
        parse_intrinsics("1 2 3")
