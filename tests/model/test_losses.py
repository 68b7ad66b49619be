"""Losses: invariances, hand-computed values on 3-frame 4x4 clips, robustness."""

from __future__ import annotations

import pytest
import torch

from vda.model.losses import (
    LossConfig,
    masked_median,
    ssi_loss,
    tgm_loss,
    total_loss,
)

VALID = LossConfig(median="valid")  # the MiDaS normalisation: median of valid pixels only


def _ssi_clip():
    """3 frames of 4x4: frame 0 has 4 valid pixels in its top row, frame 1 none, frame 2 all."""
    target = torch.zeros(1, 3, 4, 4)
    pred = torch.zeros(1, 3, 4, 4)
    mask = torch.zeros(1, 3, 4, 4, dtype=torch.bool)
    target[0, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])
    pred[0, 0, 0] = torch.tensor([2.0, 2.0, 3.0, 4.0])
    mask[0, 0, 0] = True
    target[0, 1] = 7.0  # no valid pixel: must not matter
    pred[0, 1] = -3.0
    target[0, 2] = torch.arange(16.0).reshape(4, 4) + 1
    pred[0, 2] = 2 * target[0, 2] + 1  # a perfect affine prediction
    mask[0, 2] = True
    return pred, target, mask


def test_ssi_hand_computed_single_frame():
    pred, target, mask = _ssi_clip()
    # frame 0: target median 2, MAD 1 -> [-1, 0, 1, 2]; prediction median 2,
    # MAD 0.75 -> [0, 0, 4/3, 8/3]; residual [1, 0, 1/3, 2/3]: MAE 2/4 = 0.5.
    # gradients: scale 0: (1 + 1/3 + 1/3) / 4 valid = 5/12; scale 1 (pixels 0, 2):
    # |1/3 - 1| / 2 = 1/3; scales 2, 3 have one pixel: 0. Sum 0.75.
    terms = ssi_loss(pred[:, :1], target[:, :1], mask[:, :1], VALID)
    assert terms["ssi_mae"].item() == pytest.approx(0.5, abs=1e-6)
    assert terms["ssi_grad"].item() == pytest.approx(0.75, abs=1e-6)
    assert terms["ssi"].item() == pytest.approx(0.5 + 0.5 * 0.75, abs=1e-6)


def test_ssi_hand_computed_three_frames_batch_reduction():
    pred, target, mask = _ssi_clip()
    # Batch-based reduction: the perfect 16-pixel frame adds 16 to the MAE
    # denominator; the empty frame adds nothing. MAE = 2 / 20 = 0.1.
    # gradients: scale 0: (5/3) / 20; scale 1: (2/3) / (2 + 4); others 0 -> 1/12 + 1/9.
    terms = ssi_loss(pred, target, mask, VALID)
    assert terms["ssi_mae"].item() == pytest.approx(0.1, abs=1e-6)
    assert terms["ssi_grad"].item() == pytest.approx(1 / 12 + 1 / 9, abs=1e-6)
    assert terms["ssi"].item() == pytest.approx(0.1 + 0.5 * (1 / 12 + 1 / 9), abs=1e-6)


def test_official_loss_trimming_drops_the_batch_s_largest_residuals():
    pred, target, mask = _ssi_clip()
    trim = LossConfig(trim=0.25, median="valid")
    # residuals [1, 0, 1/3, 2/3]; trim 0.25 keeps int(4 * 0.75) = 3 smallest (sum 1), and
    # the official reduction divides by all 4 valid pixels: 0.25.
    terms = ssi_loss(pred[:, :1], target[:, :1], mask[:, :1], trim)
    assert terms["ssi_mae"].item() == pytest.approx(0.25, abs=1e-6)
    # over the clip: 20 valid residuals (16 zeros of the perfect frame); int(20 * 0.75) = 15
    # smallest are all zeros: 0. Trimming per frame would have kept 1/3 + 2/3 (1/15).
    assert ssi_loss(pred, target, mask, trim)["ssi_mae"].item() == pytest.approx(0.0, abs=1e-7)


def test_official_loss_median_counts_masked_pixels_as_zeros():
    pred, target, mask = _ssi_clip()
    # frame 0: 4 valid pixels of 16. mask * target = [1, 2, 3, 4, 0 x 12]: lower median 0,
    # so m = 0, s = 10/4 -> target [2, 4, 6, 8] / 5; prediction m = 0, s = 11/4 ->
    # [8, 8, 12, 16] / 11. Residual [18, -4, -6, -8] / 55: MAE 36/55/4 = 9/55.
    official = ssi_loss(pred[:, :1], target[:, :1], mask[:, :1], LossConfig(median="official"))
    assert official["ssi_mae"].item() == pytest.approx(9 / 55, abs=1e-6)
    # the valid-pixel median (2) gives the MiDaS value of the test above, 0.5
    valid = ssi_loss(pred[:, :1], target[:, :1], mask[:, :1], VALID)
    assert valid["ssi_mae"].item() == pytest.approx(0.5, abs=1e-6)
    # with every pixel valid the two medians agree
    full = torch.ones_like(mask)
    assert ssi_loss(pred, target, full)["ssi"].item() == pytest.approx(
        ssi_loss(pred, target, full, VALID)["ssi"].item(), abs=1e-6
    )


def test_official_loss_tgm_threshold_is_the_later_frame_s_range():
    # groups A (h = 0) and B (h = 1), 8 pixels each. Target: frame 0 A 1.0, B 1.1 (range
    # 0.1: 5% = 0.005); frame 1 A 1.05, B 3.05 (range 2: 5% = 0.1). Target changes: A 0.05,
    # B 1.95. Only A passes, and only under the later frame's threshold (0.05 < 0.1; the
    # earlier frame's 0.005 would exclude every pixel and give 0). The prediction does not
    # move on A (1.0, 1.0), so after any per-clip fit its change there is 0: TGM = 0.05.
    h = torch.zeros(4, 4)
    h[:, 2:] = 1.0
    target = torch.stack([1.0 + 0.1 * h, 1.05 + 2.0 * h]).unsqueeze(0)
    pred = torch.stack([1.0 + 0.1 * h, 1.0 + 2.05 * h]).unsqueeze(0)
    mask = torch.ones_like(target, dtype=torch.bool)
    assert tgm_loss(pred, target, mask).item() == pytest.approx(0.05, abs=1e-6)


def test_official_loss_default_config_is_ssi_plus_ten_tgm():
    config = LossConfig()
    assert (config.ssi_weight, config.tgm_weight, config.trim) == (1.0, 10.0, 0.0)
    assert (config.median, config.tgm_variant, config.tgm_threshold) == ("official",) * 2 + (0.05,)
    generator = torch.Generator().manual_seed(6)
    target = 1 + 0.02 * torch.rand(1, 3, 6, 6, generator=generator)
    pred = torch.rand(1, 3, 6, 6, generator=generator)
    mask = torch.rand(1, 3, 6, 6, generator=generator) > 0.3  # partial: the median matters
    terms = total_loss(pred, target, mask)
    assert terms["tgm"].item() > 0 and terms["ssi"].item() > 0
    assert terms["loss"].item() == pytest.approx((terms["ssi"] + 10 * terms["tgm"]).item())
    assert terms["ssi"].item() == pytest.approx(ssi_loss(pred, target, mask)["ssi"].item())


def test_masked_median_is_the_lower_median_of_valid_entries():
    values = torch.tensor([[5.0, 1.0, 4.0, 2.0], [9.0, 3.0, 7.0, 0.0], [1.0, 2.0, 3.0, 4.0]])
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 1, 0], [0, 0, 0, 0]], dtype=torch.bool)
    assert masked_median(values, mask).tolist() == [2.0, 7.0, 0.0]


@pytest.mark.parametrize(("a", "b"), [(3.0, 0.0), (0.5, 2.0), (10.0, -1.0)])
def test_ssi_is_invariant_to_positive_affine_maps_of_the_prediction(a, b):
    generator = torch.Generator().manual_seed(0)
    pred = torch.rand(2, 3, 8, 8, generator=generator) + 0.1
    target = torch.rand(2, 3, 8, 8, generator=generator) + 0.1
    mask = torch.rand(2, 3, 8, 8, generator=generator) > 0.2
    base = ssi_loss(pred, target, mask, VALID)["ssi"]
    moved = ssi_loss(a * pred + b, target, mask, VALID)["ssi"]
    assert moved.item() == pytest.approx(base.item(), rel=1e-5)
    # the official median is scale-invariant, and shift-invariant only where every pixel is
    # valid: masked pixels count as zeros, and zeros do not shift with the prediction
    full = torch.ones_like(mask)
    official = ssi_loss(pred, target, full)["ssi"]
    assert ssi_loss(a * pred + b, target, full)["ssi"].item() == pytest.approx(
        official.item(), rel=1e-5
    )
    assert ssi_loss(a * pred, target, mask)["ssi"].item() == pytest.approx(
        ssi_loss(pred, target, mask)["ssi"].item(), rel=1e-5
    )


def test_ssi_is_zero_for_a_perfect_affine_prediction_and_gradient_ignores_offsets():
    target = torch.rand(1, 3, 8, 8, generator=torch.Generator().manual_seed(1)) + 0.5
    mask = torch.ones_like(target, dtype=torch.bool)
    terms = ssi_loss(4 * target + 2, target, mask)
    assert terms["ssi"].item() == pytest.approx(0.0, abs=1e-6)
    # a constant offset between normalised maps has zero spatial gradient
    from vda.model.losses import gradient_matching

    assert (
        gradient_matching(torch.full((2, 8, 8), 0.7), torch.ones(2, 8, 8, dtype=torch.bool), 4) == 0
    )


def _tgm_clip(frame_offsets, pred_offsets):
    """Two 8-pixel groups (h = 0, 1) in every frame, plus a per-frame offset."""
    h = torch.zeros(4, 4)
    h[:, 2:] = 1.0
    target = torch.stack([h + c for c in frame_offsets]).unsqueeze(0)
    pred = torch.stack([h + c for c in pred_offsets]).unsqueeze(0)
    return pred, target, torch.ones_like(target, dtype=torch.bool)


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_tgm_hand_computed_flicker(variant):
    # GT static (1 + h); prediction flickers by 0.75 in frame 1. Per-clip fit:
    # var(g) = 0.25, var(f) = 2 * 0.75**2 / 9 = 0.125, cov(g, f) = 0 -> scale 2/3,
    # so the aligned prediction jumps by 0.5 and back: TGM = 0.5 for both variants.
    pred, target, mask = _tgm_clip([1.0, 1.0, 1.0], [1.0, 1.75, 1.0])
    value = tgm_loss(pred, target, mask, LossConfig(tgm_variant=variant))
    assert value.item() == pytest.approx(0.5, abs=1e-6)


def test_tgm_signed_differences_see_opposite_motion_the_paper_formula_misses():
    # GT offsets rise by 0.02 per frame, prediction falls by 0.02. With
    # v = var(c) = 0.0008 / 3, the fit scale is s = (0.25 - v) / (0.25 + v), and
    # the aligned prediction changes by -0.02 s per frame.
    pred, target, mask = _tgm_clip([1.0, 1.02, 1.04], [1.0, 0.98, 0.96])
    v = 0.0008 / 3
    s = (0.25 - v) / (0.25 + v)
    official = tgm_loss(pred, target, mask, LossConfig(tgm_variant="official"))
    paper = tgm_loss(pred, target, mask, LossConfig(tgm_variant="paper"))
    assert official.item() == pytest.approx(0.02 * (1 + s), abs=1e-6)
    assert paper.item() == pytest.approx(0.02 * (1 - s), abs=1e-6)


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_tgm_is_zero_for_a_per_clip_affine_prediction(variant):
    target = torch.rand(2, 4, 8, 8, generator=torch.Generator().manual_seed(2)) * 0.04 + 1
    mask = torch.ones_like(target, dtype=torch.bool)
    value = tgm_loss(3 * target + 2, target, mask, LossConfig(tgm_variant=variant))
    assert value.item() == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("variant", ["official", "paper"])
def test_tgm_masking_excludes_a_moving_edge(variant):
    pred, target, mask = _tgm_clip([1.0, 1.0, 1.0], [1.0, 1.0, 1.0])
    target[0, 1, :, 3] += 1.0  # an edge moves through column 3 in frame 1 ...
    # ... which the prediction ignores: static pixels still match exactly.
    assert tgm_loss(pred, target, mask, LossConfig(tgm_variant=variant)).item() == pytest.approx(
        0.0, abs=1e-6
    )
    loose = LossConfig(tgm_variant=variant, tgm_threshold=100.0)
    assert tgm_loss(pred, target, mask, loose).item() > 0.05


def test_total_loss_combines_weighted_terms_and_images_get_no_temporal_term():
    pred, target, mask = _tgm_clip([1.0, 1.0, 1.0], [1.0, 1.75, 1.0])
    config = LossConfig(ssi_weight=2.0, tgm_weight=3.0)
    terms = total_loss(pred, target, mask, config)
    expected = 2.0 * terms["ssi"] + 3.0 * terms["tgm"]
    assert terms["loss"].item() == pytest.approx(expected.item(), abs=1e-6)
    assert terms["tgm"].item() == pytest.approx(0.5, abs=1e-6)
    image = total_loss(pred[:, :1], target[:, :1], mask[:, :1], config)
    assert image["tgm"].item() == 0.0


def test_empty_masks_give_finite_zero_losses_and_finite_gradients():
    pred = torch.rand(2, 3, 6, 6, requires_grad=True)
    target = torch.rand(2, 3, 6, 6)
    mask = torch.zeros(2, 3, 6, 6, dtype=torch.bool)
    terms = total_loss(pred, target, mask, LossConfig(trim=0.2))
    for name, value in terms.items():
        assert torch.isfinite(value) and value.item() == 0.0, name
    terms["loss"].backward()
    assert torch.isfinite(pred.grad).all()


def test_one_empty_frame_does_not_poison_the_clip():
    pred, target, mask = _tgm_clip([1.0, 1.0, 1.0], [1.0, 1.75, 1.0])
    mask[0, 2] = False
    pred.requires_grad_(True)
    terms = total_loss(pred, target, mask, LossConfig(trim=0.2))
    assert all(torch.isfinite(v) for v in terms.values())
    terms["loss"].backward()
    assert torch.isfinite(pred.grad).all()


def test_losses_run_in_fp32_under_autocast():
    generator = torch.Generator().manual_seed(4)
    pred = torch.rand(1, 3, 8, 8, generator=generator)
    target = torch.rand(1, 3, 8, 8, generator=generator) + 0.5
    mask = torch.ones_like(target, dtype=torch.bool)
    reference = total_loss(pred.bfloat16().float(), target.bfloat16().float(), mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        terms = total_loss(pred.bfloat16(), target.bfloat16(), mask)
    for name in reference:
        assert terms[name].dtype == torch.float32, name
        assert terms[name].item() == pytest.approx(reference[name].item(), rel=1e-5, abs=1e-6)


@pytest.mark.slow
def test_tgm_handles_more_than_2_pow_24_elements():
    # B * (T - 1) * H * W = 1 * 4 * 2100 * 2100 = 17.6M > 2**24 = 16.8M
    target = torch.rand(1, 5, 2100, 2100, generator=torch.Generator().manual_seed(5)) + 1
    mask = torch.ones_like(target, dtype=torch.bool)
    value = tgm_loss(target * 2, target, mask)
    assert torch.isfinite(value) and value.item() == pytest.approx(0.0, abs=1e-5)
