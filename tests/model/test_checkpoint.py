"""Checkpoint adapters: strict official loading, round trips, DAv2 / timm init, safety."""

from __future__ import annotations

import pickle

import pytest
import torch
from helpers import random_clip, tiny_model

from vda.model import (
    CheckpointError,
    ModelConfig,
    VideoDepthAnything,
    export_official,
    load_checkpoint,
    load_weights,
    official_state_dict,
    save_checkpoint,
)


def _official_file(tmp_path, model, name="video_depth_anything_tiny.pth"):
    """Write a state dict exactly as the official release does: a plain torch.save'd dict."""
    path = tmp_path / name
    torch.save({k: v.clone() for k, v in model.state_dict().items()}, path)
    return path


def test_official_layout_file_loads_strictly_with_identical_outputs(tmp_path):
    model = tiny_model(seed=1)
    path = _official_file(tmp_path, model)
    loaded = load_checkpoint(path).eval()
    assert loaded.config.size == "tiny" and not loaded.config.metric
    for key, value in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[key], value), key
    clip = random_clip(frames=3)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))


def test_export_import_round_trip_is_bit_exact(tmp_path):
    model = tiny_model(seed=2)
    first = tmp_path / "a.pth"
    export_official(model, first)
    second = tmp_path / "b.pth"
    export_official(load_checkpoint(first), second)
    a = torch.load(first, weights_only=True)
    b = torch.load(second, weights_only=True)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_metric_checkpoints_are_recognised_by_their_official_name(tmp_path):
    path = _official_file(tmp_path, tiny_model(), name="metric_video_depth_anything_tiny.pth")
    assert load_checkpoint(path).config.metric


@pytest.mark.parametrize(
    ("edit", "named"),
    [
        (
            lambda sd: sd.pop("head.scratch.output_conv1.weight"),
            "missing keys: head.scratch.output_conv1.weight",
        ),
        (
            lambda sd: sd.__setitem__("head.extra.weight", torch.zeros(1)),
            "unexpected keys: head.extra.weight",
        ),
        (
            lambda sd: sd.__setitem__("head.projects.0.weight", torch.zeros(8, 32, 1, 1)),
            "shape mismatches: head.projects.0.weight (8, 32, 1, 1) != (32, 32, 1, 1)",
        ),
        (
            lambda sd: sd.pop(
                "head.motion_modules.0.temporal_transformer.transformer_blocks.0"
                ".attention_blocks.0.pos_encoder.pe"
            ),
            "pos_encoder.pe",
        ),
    ],
)
def test_mismatched_checkpoint_is_refused_naming_the_keys(tmp_path, edit, named):
    state = dict(tiny_model().state_dict())
    edit(state)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert named in str(info.value)


def test_shortened_position_encoding_is_refused(tmp_path):
    """A pe buffer resized for a shorter window would break official checkpoints."""
    state = dict(tiny_model().state_dict())
    key = next(k for k in state if k.endswith("pos_encoder.pe"))
    state[key] = state[key][:, :16]
    with pytest.raises(CheckpointError, match=r"\(1, 16, 64\) != \(1, 32, 64\)"):
        load_weights(tiny_model(), state)


class _Payload:
    def __reduce__(self):
        return (print, ("this would run on load",))


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
def test_checkpoints_are_read_with_weights_only(tmp_path):
    path = tmp_path / "evil.pth"
    with path.open("wb") as handle:
        pickle.dump({"pretrained.pos_embed": _Payload()}, handle)
    with pytest.raises(CheckpointError, match="cannot read checkpoint"):
        load_checkpoint(path)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "nope.pth")


def test_depth_anything_v2_checkpoint_initialises_encoder_and_head(tmp_path):
    """DAv2 = encoder + plain head under `depth_head.`; temporal modules stay identity."""
    image_model = tiny_model(seed=3)
    state = {
        ("depth_head." + k[len("head.") :] if k.startswith("head.") else k): v
        for k, v in image_model.state_dict().items()
        if not k.startswith("head.motion_modules.")
    }
    path = tmp_path / "depth_anything_v2_tiny.pth"
    torch.save(state, path)
    model = VideoDepthAnything(ModelConfig(size="tiny")).eval()
    assert load_weights(model, path) == "dav2"
    for key, value in state.items():
        assert torch.equal(model.state_dict()[key.replace("depth_head.", "head.")], value)
    proj_out = model.head.motion_modules[0].temporal_transformer.proj_out.weight
    assert torch.count_nonzero(proj_out) == 0
    clip = random_clip(frames=3)
    with torch.no_grad():
        video = model(clip)
        frames = torch.cat([model(clip[:, t : t + 1]) for t in range(3)], dim=1)
    torch.testing.assert_close(video, frames, rtol=0, atol=1e-5)


def test_timm_dinov2_weights_initialise_only_the_encoder():
    source = tiny_model(seed=4)
    timm_state = {
        k[len("pretrained.") :]: v
        for k, v in source.state_dict().items()
        if k.startswith("pretrained.") and k != "pretrained.mask_token"
    }
    timm_state["head.weight"] = torch.zeros(3, 32)  # a classifier the depth model ignores
    model = VideoDepthAnything(ModelConfig(size="tiny"))
    head_before = model.head.scratch.output_conv1.weight.clone()
    assert load_weights(model, timm_state) == "timm"
    assert torch.equal(
        model.pretrained.blocks[2].mlp.fc1.weight, source.pretrained.blocks[2].mlp.fc1.weight
    )
    assert torch.equal(model.head.scratch.output_conv1.weight, head_before)


def test_own_format_round_trips_config_and_weights(tmp_path):
    model = tiny_model(seed=5, temporal_diff="diff_cnn")
    path = tmp_path / "run.ckpt"
    save_checkpoint(model, path, extra={"epoch": 3})
    loaded = load_checkpoint(path).eval()
    assert loaded.config == model.config
    clip = random_clip(frames=3)
    with torch.no_grad():
        assert torch.equal(loaded(clip), model(clip))
    assert torch.load(path, weights_only=True)["extra"] == {"epoch": 3}


def test_trained_diff_branch_cannot_be_exported_to_the_official_layout():
    model = tiny_model(temporal_diff="diff_cnn")  # randomized: projections non-zero
    with pytest.raises(CheckpointError, match="diff-CNN"):
        official_state_dict(model)
    untrained = VideoDepthAnything(ModelConfig(size="tiny", temporal_diff="diff_cnn"))
    assert not any(k.startswith("diff_cnn.") for k in official_state_dict(untrained))


def test_official_checkpoint_starts_a_diff_cnn_model(tmp_path):
    """Fine-tuning the extension starts from official weights plus a zero branch."""
    path = _official_file(tmp_path, tiny_model(seed=6))
    model = load_checkpoint(path, temporal_diff="diff_cnn").eval()
    reference = load_checkpoint(path).eval()
    clip = random_clip(frames=3)
    with torch.no_grad():
        assert torch.equal(model(clip), reference(clip))
