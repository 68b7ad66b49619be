"""Long-video strategies: how windows are stitched, checked on windows with known scale errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vda.model import strategies
from vda.model.config import ModelConfig
from vda.model.inference import InferenceConfig, WindowConfig
from vda.model.network import VideoDepthAnything

LENGTH, INTERP = 16, 4


@pytest.fixture
def windows_with_scale_errors(monkeypatch):
    """Each window returns the true disparity times its own scale plus its own shift.

    Frame i is an image filled with the value i, so a window knows which frames it got;
    the true disparity of frame i is 1 + 0.1 * i + a fixed spatial pattern.
    """
    pattern = np.linspace(0, 1, 6 * 8, dtype=np.float32).reshape(6, 8)
    rng = np.random.default_rng(0)
    calls = []

    def window(model, frames, config, device):
        index = frames[:, 0, 0, 0].astype(np.float32)
        truth = 1 + 0.1 * index[:, None, None] + pattern
        scale, shift = rng.uniform(0.5, 2.0), rng.uniform(-0.2, 0.2)
        calls.append(len(frames))
        return torch.from_numpy((truth * scale + shift).astype(np.float32))

    monkeypatch.setattr(strategies, "predict_window", window)
    frames = np.repeat(np.arange(50, dtype=np.uint8)[:, None, None, None], 6, axis=1)
    frames = np.repeat(np.repeat(frames, 8, axis=2), 3, axis=3)
    truth = 1 + 0.1 * np.arange(50, dtype=np.float32)[:, None, None] + pattern
    return frames, truth, calls


def _model():
    return VideoDepthAnything(ModelConfig(size="tiny", num_frames=LENGTH))


def _affine_residual(prediction, truth):
    design = np.stack([prediction.ravel(), np.ones(prediction.size)], axis=1)
    solution, *_ = np.linalg.lstsq(design, truth.ravel(), rcond=None)
    return float(np.abs(design @ solution - truth.ravel()).max())


def test_aligned_windows_recover_one_consistent_scale(windows_with_scale_errors):
    frames, truth, calls = windows_with_scale_errors
    config = InferenceConfig(window=WindowConfig(length=LENGTH, interp=INTERP, key_offset=2))
    out = strategies.predict_video(_model(), frames, "aligned_windows", config)
    assert out.shape == truth.shape
    # every window's scale error is undone by aligning it on the overlap: one global affine fits
    assert _affine_residual(out, truth) < 1e-3
    # stride length - interp = 12: windows at 0, 12, 24, 36 cover 50 frames
    assert len(calls) == 4


def test_independent_windows_keep_their_scale_jumps(windows_with_scale_errors):
    frames, truth, calls = windows_with_scale_errors
    config = InferenceConfig(window=WindowConfig(length=LENGTH, interp=INTERP, key_offset=2))
    out = strategies.predict_video(_model(), frames, "independent_windows", config)
    assert out.shape == truth.shape and len(calls) == 4  # ceil(50 / 16)
    assert _affine_residual(out, truth) > 0.1  # no single scale and shift explains all windows
    # inside one window a single affine still fits exactly
    assert _affine_residual(out[:LENGTH], truth[:LENGTH]) < 1e-4


def test_per_frame_runs_each_frame_alone(windows_with_scale_errors):
    frames, truth, calls = windows_with_scale_errors
    out = strategies.predict_video(_model(), frames[:7], "per_frame", InferenceConfig())
    assert out.shape == truth[:7].shape and calls == [1] * 7


def test_short_clip_is_one_window_for_every_windowed_strategy():
    torch.manual_seed(0)
    model = _model()
    frames = np.random.default_rng(1).integers(0, 255, (11, 28, 42, 3), dtype=np.uint8)
    config = InferenceConfig(
        window=WindowConfig(length=LENGTH, interp=INTERP, key_offset=2), input_size=28
    )
    engine = strategies.predict_video(model, frames, "keyframes", config)
    for strategy in ("independent_windows", "aligned_windows"):
        other = strategies.predict_video(model, frames, strategy, config)
        np.testing.assert_allclose(other, engine, rtol=1e-5, atol=1e-6)


def test_unknown_strategy_is_named():
    with pytest.raises(ValueError, match="unknown strategy 'zigzag'"):
        strategies.predict_video(_model(), np.zeros((2, 14, 14, 3), np.uint8), "zigzag")
