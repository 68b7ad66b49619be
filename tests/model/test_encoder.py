"""The DINOv2 encoder: official position-embedding resampling, taps, timm parity."""

from __future__ import annotations

import pytest
import timm
import torch
import torch.nn.functional as F

from vda.model.config import ENCODERS
from vda.model.encoder import DinoV2Encoder, interpolate_pos_embed


def _pos_embed(dim: int = 8, seed: int = 0) -> torch.Tensor:
    return torch.randn(1, 1 + 37 * 37, dim, generator=torch.Generator().manual_seed(seed))


def test_pos_embed_interpolation_equals_official_call_on_non_square_grid():
    pos = _pos_embed()
    got = interpolate_pos_embed(pos, 37, 66)
    grid = pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    official = F.interpolate(
        grid, scale_factor=((37 + 0.1) / 37, (66 + 0.1) / 37), mode="bicubic", antialias=False
    )
    expected = torch.cat([pos[:, :1], official.permute(0, 2, 3, 1).reshape(1, 37 * 66, 8)], 1)
    assert got.shape == (1, 1 + 37 * 66, 8)
    assert torch.equal(got, expected)


def test_pos_embed_interpolation_differs_from_a_size_call():
    """The reason timm's own resampling is replaced: a `size=` call samples another grid."""
    pos = _pos_embed()
    grid = pos[:, 1:].reshape(1, 37, 37, 8).permute(0, 3, 1, 2)
    by_size = F.interpolate(grid, size=(37, 66), mode="bicubic", antialias=False)
    ours = interpolate_pos_embed(pos, 37, 66)[:, 1:].reshape(1, 37, 66, 8).permute(0, 3, 1, 2)
    assert (ours - by_size).abs().max() > 1e-3


def test_pretraining_grid_is_returned_unchanged():
    pos = _pos_embed()
    assert interpolate_pos_embed(pos, 37, 37) is pos


def test_encoder_taps_use_the_official_pos_embed():
    """Hand-run the tiny encoder (patchify, class token, official pos-embed, blocks, norm)."""
    torch.manual_seed(0)
    encoder = DinoV2Encoder(ENCODERS["tiny"]).eval()
    images = torch.randn(2, 3, 14 * 3, 14 * 5)
    with torch.no_grad():
        taps = encoder.forward_taps(images, (1, 3))
        tokens = encoder.patch_embed.proj(images).flatten(2).transpose(1, 2)
        tokens = torch.cat([encoder.cls_token.expand(2, -1, -1), tokens], 1)
        tokens = tokens + interpolate_pos_embed(encoder.pos_embed, 3, 5)
        expected = []
        for i, block in enumerate(encoder.blocks):
            tokens = block(tokens)
            if i in (1, 3):
                expected.append(encoder.norm(tokens)[:, 1:])
    assert [t.shape for t in taps] == [(2, 15, 32), (2, 15, 32)]
    for got, want in zip(taps, expected):
        torch.testing.assert_close(got, want)


def test_encoder_matches_timm_dinov2_at_the_pretraining_resolution():
    """timm's DINOv2 weights load into our encoder and give timm's features at 518 x 518."""
    reference = timm.create_model("vit_small_patch14_dinov2", pretrained=False, num_classes=0)
    reference.eval()
    encoder = DinoV2Encoder(ENCODERS["vits"]).eval()
    missing, unexpected = encoder.load_state_dict(reference.state_dict(), strict=False)
    assert missing == ["mask_token"] and unexpected == []
    image = torch.randn(1, 3, 518, 518, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = encoder.forward_taps(image, (2, 11))
        theirs = reference.forward_intermediates(
            image, indices=[2, 11], norm=True, output_fmt="NLC", intermediates_only=True
        )
    assert len(ours) == len(theirs) == 2  # both taps, compared below
    for got, want in zip(ours, theirs):
        want = want.reshape(1, -1, 384)
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4)


def test_rejects_sizes_that_are_not_patch_multiples():
    encoder = DinoV2Encoder(ENCODERS["tiny"])
    with pytest.raises(ValueError, match="multiple of the patch size"):
        encoder.forward_taps(torch.zeros(1, 3, 30, 28), (0,))
