"""Evaluating `vda infer` outputs against a prepared data set, on a known answer."""

from __future__ import annotations

import numpy as np
import pytest

from vda.platform.data.pipeline import read_manifest
from vda.platform.data.prepare import PrepareConfig, SyntheticOptions, prepare
from vda.platform.eval.outputs import read_sequence
from vda.platform.eval.scoring import evaluate_outputs

pytestmark = pytest.mark.integration


def test_ground_truth_fed_back_scores_perfectly(tmp_path, ray_cluster):
    data = tmp_path / "data"
    prepare(
        PrepareConfig(
            dst=str(data),
            chunk_frames=6,
            synthetic=SyntheticOptions(sequences=2, frames=10, height=28, width=42),
        ),
        progress=lambda _: None,
    )
    manifest = read_manifest(str(data))
    outputs = tmp_path / "outputs"
    for entry in manifest["sequences"]:
        truth = read_sequence(str(data), entry)
        depth, valid = truth.depth, truth.valid
        disparity = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
        folder = outputs / entry["sequence"]
        folder.mkdir(parents=True)
        # as vda infer writes it: float16, arbitrary scale and shift of disparity
        np.savez_compressed(
            folder / "depth.npz",
            depth=(3 * disparity + 0.5).astype(np.float16),
            frame_index=np.arange(len(depth)),
        )
    report = evaluate_outputs(str(outputs), str(data))
    assert report.overall["sequences"] == 2 and not report.missing
    assert report.overall["abs_rel"] < 2e-3  # float16 storage is the only error
    assert report.overall["delta1"] == 1.0
    assert report.overall["tae"] < 3.0  # nearest-pixel splatting only

    # a missing sequence is reported, not silently averaged away
    (outputs / manifest["sequences"][0]["sequence"] / "depth.npz").unlink()
    partial = evaluate_outputs(str(outputs), str(data))
    assert partial.missing == [manifest["sequences"][0]["sequence"]]
