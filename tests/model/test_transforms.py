"""Official preprocessing: sizes, aspect guard, normalisation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vda.model.transforms import effective_input_size, network_size, preprocess_frames


@pytest.mark.parametrize(
    ("height", "width", "expected"),
    [
        (480, 640, (518, 686)),  # 640 * 518/480 = 690.7 -> 49.3 patches -> 49 -> 686
        (518, 518, (518, 518)),
        (1080, 1920, (518, 924)),  # 920.9 -> 65.8 patches -> 66 -> 924
        (640, 480, (686, 518)),
        (100, 100, (518, 518)),  # upscaled to the short-side minimum
    ],
)
def test_network_size_hand_derived(height, width, expected):
    assert network_size(height, width, 518) == expected


def test_aspect_guard_shrinks_input_size_for_wide_videos():
    assert effective_input_size(1080, 1920) == 518  # 16:9 passes
    # ratio 2.5: int(518 * 1.777 / 2.5) = 368 -> round(368 / 14) * 14 = 364
    assert effective_input_size(400, 1000) == 364


def test_preprocess_normalises_with_imagenet_statistics():
    frames = np.full((2, 30, 40, 3), 255, dtype=np.uint8)
    frames[..., 1] = 0
    out = preprocess_frames(frames, input_size=28)
    assert out.shape == (2, 3, 28, 42) and out.dtype == torch.float32
    torch.testing.assert_close(out[:, 0], torch.full((2, 28, 42), (1 - 0.485) / 0.229))
    torch.testing.assert_close(out[:, 1], torch.full((2, 28, 42), (0 - 0.456) / 0.224))


def test_preprocess_rejects_non_rgb():
    with pytest.raises(ValueError, match="RGB"):
        preprocess_frames(np.zeros((2, 30, 40), dtype=np.uint8))


@pytest.mark.parametrize(("height", "width"), [(197, 333), (540, 960), (42, 28)])
def test_preprocess_is_bit_identical_to_the_official_arithmetic(height, width):
    """The official steps written plainly (float32 /255, cubic resize, -mean, /std, channels
    first): the vectorised version must not change a single bit."""
    import cv2

    frames = np.random.default_rng(height).integers(0, 256, (3, height, width, 3), np.uint8)
    out = preprocess_frames(frames, input_size=518)
    out_h, out_w = out.shape[2:]
    mean = np.asarray((0.485, 0.456, 0.406), dtype=np.float32)
    std = np.asarray((0.229, 0.224, 0.225), dtype=np.float32)
    expected = np.stack(
        [
            (
                cv2.resize(
                    f.astype(np.float32) / 255.0, (out_w, out_h), interpolation=cv2.INTER_CUBIC
                )
                - mean
            )
            / std
            for f in frames
        ]
    ).transpose(0, 3, 1, 2)
    assert out.is_contiguous() and np.array_equal(out.numpy(), expected)
