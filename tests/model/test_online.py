"""The online engine against the official online mode, and its cache rules."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest
import torch
from helpers import tiny_model
from online_reference import (
    INPUT_SIZE,
    SIZE,
    official_layout_weights,
    reference_frames,
    weights_sha256,
)

from vda.model import ModelConfig, VideoDepthAnything
from vda.model.checkpoint import load_checkpoint, official_state_dict
from vda.model.inference import OnlineDepthEngine, OnlineSchedule
from vda.model.transforms import preprocess_frames

REFERENCE = "tests/data/online_reference.npz"


@pytest.fixture(scope="module")
def reference(request) -> dict:
    with np.load(request.config.rootpath / REFERENCE) as stored:
        return {key: stored[key] for key in stored.files}


@pytest.fixture(scope="module")
def official_model(reference, tmp_path_factory) -> VideoDepthAnything:
    """The reference's random weights, written as an official .pth and read by vda's loader."""
    state = official_state_dict(VideoDepthAnything(ModelConfig(size=SIZE)))
    weights = official_layout_weights({key: value.shape for key, value in state.items()})
    assert weights_sha256(weights) == str(reference["weights_sha256"]), (
        "the generated weights are not the ones the reference was made with"
    )
    state.update(weights)
    path = tmp_path_factory.mktemp("online") / "video_depth_anything_vits.pth"
    torch.save(state, path)
    return load_checkpoint(path)


def test_online_engine_equals_the_official_online_mode(official_model, reference):
    """Depth per frame to 1e-5 of the depth range over 100 frames, against the official
    `infer_video_depth_one` run once on the same weights and frames
    (scripts/make_online_reference.py)."""
    frames = reference_frames()
    assert hashlib.sha256(frames.tobytes()).hexdigest() == str(reference["frames_sha256"])
    engine = OnlineDepthEngine(official_model, input_size=INPUT_SIZE, precision="fp32")
    depths = np.stack([engine.step(frame) for frame in frames])
    expected = reference["depth"]
    assert depths.shape == expected.shape == (100, 30, 45)
    depth_range = float(expected.max() - expected.min())
    assert np.abs(depths - expected).max() <= 1e-5 * depth_range
    # the cache is what is being compared: the same frames each run as a first frame
    # (no earlier state) are far from the reference on every frame after the first
    alone = np.stack(
        [OnlineDepthEngine(official_model, INPUT_SIZE, "fp32").step(f) for f in frames[:12]]
    )
    assert np.abs(alone[0] - expected[0]).max() <= 1e-5 * depth_range
    assert np.abs(alone[1:] - expected[1:12]).max(axis=(1, 2)).min() > 1e-2 * depth_range


@pytest.mark.parametrize(
    ("frame", "context"),
    [
        (1, [0] * 31),  # the first frame's state fills the list
        (5, [0] * 27 + [1, 2, 3, 4]),
        (42, [0, 1, *range(13, 42)]),  # the last copy of frame 0 beyond the head just left
        (60, [0, 19, *range(31, 60)]),  # steady state: the key frame 41 back, the last 29
    ],
)
def test_schedule_hand_values(frame, context):
    schedule = OnlineSchedule()
    for earlier in range(frame):
        schedule.add(earlier)
    assert schedule.context() == context
    assert len(schedule.entries) == min(32 + frame - 1, 42)


def test_memory_stays_bounded_and_reset_starts_a_new_stream():
    engine = OnlineDepthEngine(tiny_model(), input_size=28)
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (70, 28, 28, 3), dtype=np.uint8)
    depths = [engine.step(frame) for frame in frames]
    assert engine.cached_frames == 42 and engine.frames == 70
    with pytest.raises(ValueError, match="one stream has one frame size"):
        engine.step(frames[0][:, :14])
    engine.reset()
    assert engine.cached_frames == 0
    np.testing.assert_array_equal(engine.step(frames[0]), depths[0])


def test_diff_cnn_model_sees_the_previous_frame():
    """With the temporal modules at their identity initialisation the head is per frame, so
    each online depth is the network's on the clip (previous frame, frame): the diff-CNN
    term is the frame's difference to its predecessor, and a first frame has none."""
    model = tiny_model(seed=3, temporal_diff="diff_cnn")
    with torch.no_grad():
        for module in model.head.motion_modules:
            module.temporal_transformer.proj_out.weight.zero_()
            module.temporal_transformer.proj_out.bias.zero_()
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    engine = OnlineDepthEngine(model, 28)
    images = preprocess_frames(frames, 28)
    with torch.no_grad():
        expected = [model(images[:1][None])[0, 0]]
        expected += [model(images[i - 1 : i + 1][None])[0, 1] for i in (1, 2)]
    for frame, want in zip(frames, expected):
        np.testing.assert_allclose(engine.step(frame), want.numpy(), atol=1e-5)
    # and the branch matters: without it the later frames differ
    plain = OnlineDepthEngine(tiny_model(seed=3, temporal_diff="none"), 28)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("diff_cnn.")}
    plain.model.load_state_dict(state)
    assert np.abs(plain.step(frames[0]) - expected[0].numpy()).max() > 1e-4


def test_image_model_runs_each_frame_alone():
    model = tiny_model(seed=2, temporal=False)
    engine = OnlineDepthEngine(model, 28)
    rng = np.random.default_rng(2)
    frames = rng.integers(0, 256, (3, 28, 28, 3), dtype=np.uint8)
    for frame in frames:
        alone = OnlineDepthEngine(model, 28).step(frame)
        np.testing.assert_array_equal(engine.step(frame), alone)
    assert engine.cached_frames == 0
