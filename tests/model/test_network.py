"""Behaviour of the VDA network: official structure, shapes, identity at init, freezing."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import random_clip, tiny_model

from vda.model import ModelConfig, VideoDepthAnything, official_state_dict
from vda.model.temporal import TemporalAttention, TemporalModule

# Facts of the official release (its state dicts and model code).
OFFICIAL = {
    "vits": (351, 29_035_137),
    "vitl": (519, 384_390_337),
}


def _meta_model(size: str) -> VideoDepthAnything:
    with torch.device("meta"):
        return VideoDepthAnything(ModelConfig(size=size))


@pytest.mark.parametrize("size", ["vits", "vitl"])
def test_official_layout_has_official_key_and_element_counts(size):
    state = official_state_dict(_meta_model(size))
    keys, elements = OFFICIAL[size]
    assert len(state) == keys
    counted = sum(v.numel() for k, v in state.items() if not k.endswith("pos_encoder.pe"))
    assert counted == elements


def test_official_layout_shapes_of_landmark_keys_vits():
    state = official_state_dict(_meta_model("vits"))
    expected = {
        "pretrained.pos_embed": (1, 1 + 37 * 37, 384),
        "pretrained.mask_token": (1, 384),
        "pretrained.cls_token": (1, 1, 384),
        "pretrained.patch_embed.proj.weight": (384, 3, 14, 14),
        "pretrained.blocks.11.ls2.gamma": (384,),
        "head.projects.0.weight": (48, 384, 1, 1),
        "head.resize_layers.0.weight": (48, 48, 4, 4),
        "head.resize_layers.3.weight": (384, 384, 3, 3),
        "head.scratch.layer4_rn.weight": (64, 384, 3, 3),
        "head.scratch.refinenet4.resConfUnit1.conv1.weight": (64, 64, 3, 3),
        "head.scratch.output_conv1.weight": (32, 64, 3, 3),
        "head.scratch.output_conv2.2.weight": (1, 32, 1, 1),
        "head.motion_modules.0.temporal_transformer.norm.weight": (192,),
        "head.motion_modules.1.temporal_transformer.proj_in.weight": (384, 384),
        "head.motion_modules.2.temporal_transformer.transformer_blocks.0"
        ".attention_blocks.1.pos_encoder.pe": (1, 32, 64),
        "head.motion_modules.3.temporal_transformer.transformer_blocks.0.ff.net.0.proj.weight": (
            512,
            64,
        ),
        "head.motion_modules.3.temporal_transformer.transformer_blocks.0.ff.net.2.weight": (
            64,
            256,
        ),
    }
    for key, shape in expected.items():
        assert tuple(state[key].shape) == shape, key
    # unused in the forward pass, but part of the format
    assert sum(p.numel() for k, p in state.items() if "refinenet4.resConfUnit1" in k) == 73_856


def test_output_shape_finite_and_non_negative():
    model = tiny_model()
    clip = random_clip(batch=2, frames=5, height=42, width=70)
    with torch.no_grad():
        depth = model(clip)
    assert depth.shape == (2, 5, 42, 70)
    assert torch.isfinite(depth).all()
    assert (depth >= 0).all()
    assert depth.max() > 0


def test_rejects_bad_input_shapes():
    model = tiny_model()
    with pytest.raises(ValueError, match="multiple of 14"):
        model(torch.zeros(1, 2, 3, 40, 56))
    with pytest.raises(ValueError, match="32-frame window"):
        model(torch.zeros(1, 33, 3, 14, 14))
    with pytest.raises(ValueError, match=r"\(B, T, 3, H, W\)"):
        model(torch.zeros(2, 3, 28, 28))


def test_temporal_modules_are_identity_at_initialisation():
    module = TemporalModule(64, max_len=32)
    x = torch.randn(6, 64, 3, 5)  # 2 clips x 3 frames
    assert torch.equal(module(x, frames=3), x)


def test_untrained_temporal_head_equals_per_frame_image_model():
    """Zero-initialised temporal modules: a clip's depth is its frames' depths, one by one."""
    model = tiny_model()
    for module in model.head.motion_modules:
        torch.nn.init.zeros_(module.temporal_transformer.proj_out.weight)
        torch.nn.init.zeros_(module.temporal_transformer.proj_out.bias)
    clip = random_clip(frames=4)
    with torch.no_grad():
        together = model(clip)
        alone = torch.cat([model(clip[:, t : t + 1]) for t in range(4)], dim=1)
    torch.testing.assert_close(together, alone, rtol=0, atol=1e-5)


def test_trained_temporal_head_mixes_information_across_frames():
    model = tiny_model()
    clip = random_clip(frames=4)
    changed = clip.clone()
    changed[:, 3] += 1.0
    with torch.no_grad():
        a, b = model(clip), model(changed)
    assert not torch.allclose(a[:, 0], b[:, 0])  # frame 0 sees frame 3


def test_temporal_attention_matches_plain_softmax_attention():
    torch.manual_seed(0)
    attention = TemporalAttention(dim=16, heads=4, max_len=32)
    x = torch.randn(3, 7, 16)
    with torch.no_grad():
        got = attention(x)
        h = x + attention.pos_encoder.pe[:, :7]
        q, k, v = attention.to_q(h), attention.to_k(h), attention.to_v(h)

        def heads(t):
            return t.reshape(3, 7, 4, 4).transpose(1, 2)

        weights = torch.softmax(heads(q) @ heads(k).transpose(-1, -2) / math.sqrt(4), dim=-1)
        out = (weights @ heads(v)).transpose(1, 2).reshape(3, 7, 16)
        expected = attention.to_out[0](out)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)


def test_position_encoding_is_sinusoidal():
    pe = TemporalAttention(dim=8, heads=2, max_len=32).pos_encoder.pe[0]
    assert pe.shape == (32, 8)
    # position 3, channel pair 1 (dims 2, 3): frequency 10000^(-2/8)
    frequency = 10000 ** (-2 / 8)
    assert pe[3, 2].item() == pytest.approx(math.sin(3 * frequency), abs=1e-6)
    assert pe[3, 3].item() == pytest.approx(math.cos(3 * frequency), abs=1e-6)


def test_frozen_encoder_gets_no_gradients_and_stays_in_eval_mode():
    model = tiny_model()
    model.train()
    assert not model.pretrained.training
    assert model.head.training
    depth = model(random_clip(frames=3))
    depth.mean().backward()
    assert all(p.grad is None for p in model.pretrained.parameters())
    trainable = list(model.trainable_parameters())
    encoder_ids = {id(p) for p in model.pretrained.parameters()}
    assert not encoder_ids & {id(p) for p in trainable}
    # every parameter an optimizer owns receives a gradient: DDP needs no
    # find_unused_parameters (refinenet4.resConfUnit1 is excluded).
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing and all("refinenet4.resConfUnit1" in n for n in missing)
    assert all(p.grad is not None for p in trainable)


def test_unfrozen_encoder_trains():
    model = tiny_model(freeze_encoder=False)
    model.train()
    assert model.pretrained.training
    model(random_clip(frames=2)).mean().backward()
    assert model.pretrained.blocks[0].attn.qkv.weight.grad is not None


def test_micro_batched_head_gives_the_same_output():
    model = tiny_model()
    clip = random_clip(batch=2, frames=6)
    with torch.no_grad():
        full = model(clip)
        chunked = model(clip, micro_batch=4)
    torch.testing.assert_close(full, chunked, rtol=0, atol=1e-6)


def test_head_output_is_bilinear_free_at_network_resolution():
    """The head's output already has the input size: no resampling is applied."""
    model = tiny_model()
    clip = random_clip(frames=2, height=28, width=42)
    with torch.no_grad():
        features = model.encode_frames(clip.flatten(0, 1))
        raw = model.head(features, 2, 3, frames=2)
        depth = model.decode(features, 1, 2, 28, 42)
    torch.testing.assert_close(depth, F.relu(raw).reshape(1, 2, 28, 42))


def test_a_fresh_model_has_a_live_output_and_gradients():
    """With default init the final ReLU would output zeros and train nothing."""
    torch.manual_seed(0)
    model = VideoDepthAnything(ModelConfig(size="tiny"))
    model.train()
    depth = model(random_clip(frames=3))
    assert (depth > 0).float().mean() > 0.9
    depth.mean().backward()
    grads = [p.grad for p in model.trainable_parameters()]
    assert all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0
