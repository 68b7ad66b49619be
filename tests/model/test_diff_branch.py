"""Diff-CNN branch: adjacent differences only, exact no-op until trained."""

from __future__ import annotations

import torch
from helpers import random_clip, tiny_model

from vda.model.diff_branch import adjacent_differences


def test_adjacent_differences_hand_values():
    frames = torch.tensor([0.0, 1.0, 3.0, 6.0]).reshape(1, 4, 1, 1, 1)
    diffs = adjacent_differences(frames, None).flatten().tolist()
    assert diffs == [0.0, 1.0, 2.0, 3.0]


def test_non_adjacent_slots_get_no_difference():
    """Key frames spliced into a window (0, 12 | 22, 23, 24) have no predecessor."""
    frames = torch.tensor([5.0, 7.0, 8.0, 10.0, 13.0]).reshape(1, 5, 1, 1, 1)
    index = torch.tensor([[0, 12, 22, 23, 24]])
    diffs = adjacent_differences(frames, index).flatten().tolist()
    assert diffs == [0.0, 0.0, 0.0, 2.0, 3.0]


def test_untrained_branch_leaves_outputs_exactly_unchanged():
    base = tiny_model(seed=7)
    with_branch = tiny_model(seed=7, randomized=False, temporal_diff="diff_cnn")
    with_branch.load_state_dict(base.state_dict(), strict=False)
    clip = random_clip(frames=4)
    with torch.no_grad():
        assert torch.equal(with_branch(clip), base(clip))
        index = torch.tensor([[0, 10, 11, 12]])
        assert torch.equal(with_branch(clip, frame_index=index), base(clip))


def test_trained_branch_reacts_to_motion_and_to_frame_indices():
    model = tiny_model(seed=8, temporal_diff="diff_cnn")
    clip = random_clip(frames=4)
    with torch.no_grad():
        moving = model(clip)
        spliced = model(clip, frame_index=torch.tensor([[0, 10, 11, 12]]))
    assert not torch.allclose(moving, spliced)  # slot 1 lost its difference


def test_static_clip_gives_the_same_motion_term_in_every_slot():
    model = tiny_model(seed=9, temporal_diff="diff_cnn")
    static = random_clip(frames=1).expand(-1, 4, -1, -1, -1).contiguous()
    with torch.no_grad():
        terms = model.diff_cnn(static, None, 3, 4)
    for term in terms:
        assert term.abs().max() > 0  # trained projections: a bias-driven term
        assert torch.equal(term[0], term[3])
