"""Clip shard encoding and per-clip augmentation."""

from __future__ import annotations

import numpy as np
import pytest

from vda.platform.data.augment import AugmentConfig, Clip, augment_clip
from vda.platform.data.shards import FrameRecord, decode_chunk, encode_chunk
from vda.platform.data.synthetic import SyntheticConfig, SyntheticScene


def _records(count=5, seed=0, height=24, width=32):
    scene = SyntheticScene(SyntheticConfig(frames=count, height=height, width=width), seed)
    return [FrameRecord(f.rgb, f.depth, f.valid, f.intrinsics, f.c2w) for f in scene.frames()]


@pytest.mark.parametrize(("encoding", "atol"), [("f16", None), ("png16", 0.0005)])
def test_chunk_round_trip(encoding, atol):
    records = _records()
    row = encode_chunk(
        records,
        10,
        dataset="d",
        sequence="s",
        split="train",
        chunk=2,
        depth_encoding=encoding,
        depth_scale=0.001,
    )
    chunk = decode_chunk(row)
    assert chunk.frame_index.tolist() == [10, 11, 12, 13, 14]
    np.testing.assert_array_equal(chunk.rgb, np.stack([r.rgb for r in records]))  # PNG: exact
    depth = np.stack([r.depth for r in records])
    if atol is None:  # float16: relative precision 2**-11
        np.testing.assert_allclose(chunk.depth, depth, rtol=2**-11)
    else:
        np.testing.assert_allclose(chunk.depth, depth, atol=atol)
    np.testing.assert_array_equal(chunk.valid, np.stack([r.valid for r in records]))
    np.testing.assert_array_equal(chunk.c2w, np.stack([r.c2w for r in records]))
    part = decode_chunk(row, slice(1, 3))
    assert part.frame_index.tolist() == [11, 12] and part.rgb.shape[0] == 2


def test_mixed_sizes_in_a_chunk_are_refused():
    records = _records(2)
    records[1] = FrameRecord(records[1].rgb[:20], records[1].depth[:20], records[1].valid[:20])
    with pytest.raises(ValueError, match="frame 1"):
        encode_chunk(records, 0, dataset="d", sequence="s", split="train", chunk=0)


def _clip(records):
    return Clip(
        np.stack([r.rgb for r in records]),
        np.stack([r.depth for r in records]),
        np.stack([r.valid for r in records]),
        np.stack([r.intrinsics for r in records]),
        np.stack([r.c2w for r in records]),
    )


def test_one_augmentation_for_every_frame_of_a_clip():
    frame = _records(1)[0]
    clip = _clip([frame] * 4)  # four identical frames
    config = AugmentConfig(height=14, width=28, max_scale=1.5, color_jitter=0.3)
    out = augment_clip(clip, config, np.random.default_rng(0), train=True)
    assert out.rgb.shape == (4, 14, 28, 3) and out.depth.shape == (4, 14, 28)
    for t in range(1, 4):
        np.testing.assert_array_equal(out.rgb[t], out.rgb[0])
        np.testing.assert_array_equal(out.depth[t], out.depth[0])


def test_different_seeds_give_different_crops():
    clip = _clip(_records(2))
    config = AugmentConfig(height=14, width=14, max_scale=2.0)
    crops = {
        augment_clip(clip, config, np.random.default_rng(seed), train=True).depth.tobytes()
        for seed in range(6)
    }
    assert len(crops) > 1


def test_depth_is_resized_without_blending_values():
    clip = _clip(_records(2))
    out = augment_clip(
        clip, AugmentConfig(height=14, width=28, max_scale=1.7), np.random.default_rng(1), True
    )
    source_values = set(np.unique(clip.depth).tolist())
    assert set(np.unique(out.depth).tolist()) <= source_values  # nearest neighbour only


@pytest.mark.parametrize("seed", range(8))
def test_intrinsics_follow_zoom_and_crop(seed):
    """Each output pixel, mapped back through the augmented intrinsics, lands on its source pixel.

    The depth channel carries pixel identities (u + 1000 v), which nearest-neighbour
    resampling preserves exactly, so every output pixel names the source pixel it
    came from.
    """
    height, width = 48, 64
    k_source = np.array([[55.0, 0, 31.5], [0, 55.0, 23.5], [0, 0, 1]])
    v, u = np.mgrid[0:height, 0:width]
    ids = (u + 1000 * v).astype(np.float32)
    clip = Clip(
        np.zeros((1, height, width, 3), np.uint8),
        ids[None],
        np.ones((1, height, width), bool),
        k_source[None],
        np.eye(4)[None],
    )
    augment = AugmentConfig(height=28, width=42, min_scale=1.0, max_scale=1.8, flip=False)
    out = augment_clip(clip, augment, np.random.default_rng(seed), train=True)
    source_u, source_v = out.depth[0] % 1000, out.depth[0] // 1000
    dv, du = np.mgrid[0:28, 0:42]

    def landing(k_out):
        rays = np.linalg.inv(k_out) @ np.stack([du.ravel(), dv.ravel(), np.ones(du.size)])
        projected = k_source @ rays
        return (projected[0] / projected[2]).reshape(28, 42), (projected[1] / projected[2]).reshape(
            28, 42
        )

    lu, lv = landing(out.intrinsics[0])
    assert np.abs(lu - source_u).max() <= 0.5 + 1e-6
    assert np.abs(lv - source_v).max() <= 0.5 + 1e-6
    if not np.allclose(out.intrinsics[0], k_source):
        su, sv = landing(k_source)  # stale intrinsics put pixels elsewhere
        assert max(np.abs(su - source_u).max(), np.abs(sv - source_v).max()) > 1.0


def _world_points(depth, intrinsics, c2w):
    height, width = depth.shape
    v, u = np.mgrid[0:height, 0:width]
    rays = np.linalg.inv(intrinsics) @ np.stack([u.ravel(), v.ravel(), np.ones(u.size)])
    points = c2w[:3, :3] @ (rays * depth.ravel()) + c2w[:3, 3:4]
    return points.reshape(3, height, width)


def test_flip_mirrors_intrinsics_and_poses_exactly():
    """Back-projecting a flipped clip gives the mirror image of the source's world points."""
    frame = SyntheticScene(SyntheticConfig(frames=1, height=24, width=32), 2).render(0)
    record = FrameRecord(frame.rgb, frame.depth, frame.valid, frame.intrinsics, frame.c2w)
    augment = AugmentConfig(height=24, width=32, min_scale=1.0, max_scale=1.0, flip=True)
    out = augment_clip(_clip([record]), augment, np.random.default_rng(0), train=True)
    assert not np.array_equal(out.depth[0], frame.depth)  # seed 0 flips
    source = _world_points(frame.depth, frame.intrinsics, frame.c2w)
    flipped = _world_points(out.depth[0], out.intrinsics[0], out.c2w[0])
    mirror = np.diag([-1.0, 1.0, 1.0])
    expected = np.einsum("ij,jhw->ihw", mirror, source)[:, :, ::-1]
    np.testing.assert_allclose(flipped, expected, atol=1e-4)
    unmirrored = _world_points(out.depth[0], out.intrinsics[0], frame.c2w)
    assert np.abs(unmirrored - expected).max() > 0.1
