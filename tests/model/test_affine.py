"""The one least-squares scale/shift: hand values, its three uses agree, one degenerate rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vda.model.affine import AffineFit, align_affine, fit_affine


def test_exact_affine_data_gives_its_scale_and_shift():
    prediction = np.array([1.0, 2.0, 3.0])
    assert fit_affine(prediction, 2 * prediction + 1) == pytest.approx((2.0, 1.0))
    # the hand solution of [0, 1, 2] -> [1, 1, 4]: cov / var = 1.5, shift = 2 - 1.5 * 1
    assert fit_affine(np.array([0.0, 1.0, 2.0]), np.array([1.0, 1.0, 4.0])) == pytest.approx(
        (1.5, 0.5)
    )


def test_accumulated_fit_equals_one_shot_least_squares_and_the_valid_pixels_alone_count():
    rng = np.random.default_rng(1)
    p = rng.uniform(0.1, 2.0, size=(6, 5, 5))
    t = 0.7 * p - 0.1 + rng.normal(0, 0.01, size=p.shape)
    valid = rng.random(p.shape) > 0.3
    t_outside = np.where(valid, t, 1e6)  # what is not valid must not move the fit
    fit = AffineFit()
    for i in range(6):  # frame by frame
        fit.add(p[i], t_outside[i], valid[i])
    design = np.stack([p[valid], np.ones(int(valid.sum()))], axis=1)
    expected, *_ = np.linalg.lstsq(design, t[valid], rcond=None)
    assert fit.solve() == pytest.approx(tuple(expected), abs=1e-10)
    assert fit_affine(
        torch.from_numpy(p), torch.from_numpy(t_outside), torch.from_numpy(valid)
    ) == pytest.approx(tuple(expected), abs=1e-10)


def test_the_batched_differentiable_fit_equals_the_float64_fit_per_clip():
    generator = torch.Generator().manual_seed(3)
    target = torch.rand(3, 4, 6, 6, generator=generator)
    prediction = (target - 2.0) / 4.0 + 0.01 * torch.rand(3, 4, 6, 6, generator=generator)
    mask = torch.rand(3, 4, 6, 6, generator=generator) > 0.2
    prediction.requires_grad_(True)
    aligned = align_affine(prediction, target, mask, dims=(1, 2, 3))
    for clip in range(3):
        scale, shift = fit_affine(prediction[clip], target[clip], mask[clip])
        expected = prediction[clip].detach().double() * scale + shift
        torch.testing.assert_close(aligned[clip].detach().double(), expected, rtol=0, atol=1e-5)
    aligned.sum().backward()  # the gradient flows through the fit
    assert prediction.grad is not None and torch.isfinite(prediction.grad).all()


@pytest.mark.parametrize("constant", [0.0, 0.37, 1e4])
def test_a_prediction_without_spread_keeps_scale_1_and_moves_onto_the_target_mean(constant):
    target = np.array([1.0, 2.0, 6.0])
    prediction = np.full(3, constant)
    assert fit_affine(prediction, target) == pytest.approx((1.0, 3.0 - constant))
    # the same rule in the batched fit: every pixel lands on the target's mean
    aligned = align_affine(
        torch.full((1, 3), constant, dtype=torch.float64),
        torch.from_numpy(target[None]),
        torch.ones(1, 3, dtype=torch.bool),
        dims=(1,),
    )
    torch.testing.assert_close(aligned, torch.full((1, 3), 3.0, dtype=torch.float64))
    # spread below a millionth of the magnitude is rounding, not signal
    nearly = np.array([1.0, 1.0 + 1e-8, 1.0])
    assert fit_affine(nearly, target)[0] == 1.0


def test_the_window_fit_residual_is_rms_error_over_the_reference_magnitude():
    from vda.model.inference import fit_residual

    # errors 0 and 2 against a reference of mean magnitude 2: sqrt((0 + 4) / 2) / 2
    residual = fit_residual(torch.tensor([1.0, 1.0]), torch.tensor([1.0, 3.0]), 1.0, 0.0)
    assert residual == pytest.approx(2**0.5 / 2)
    assert fit_residual(torch.ones(3), torch.ones(3) * 2, 2.0, 0.0) == 0.0  # a perfect fit


def test_no_valid_pixel_is_an_error_not_a_number():
    with pytest.raises(ValueError, match="no valid pixels"):
        fit_affine(np.ones(3), np.ones(3), np.zeros(3, dtype=bool))
