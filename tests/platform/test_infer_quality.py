"""Quality signals of a video's alignment chain and depth, and the archive's outliers."""

from __future__ import annotations

import numpy as np
import pytest

from vda.model.inference import WindowAlignment
from vda.platform.infer.manifest import MANIFEST_SCHEMA, ManifestRow, manifest_table
from vda.platform.infer.quality import flag_outliers, signals
from vda.platform.video.process import DepthCounts


def test_signals_from_a_hand_made_chain():
    chain = [
        WindowAlignment(1, 2.0, 0.1, 0.01),
        WindowAlignment(2, 2.0, 0.3, 0.05),
        WindowAlignment(3, 3.0, 0.3, 0.02),
    ]
    counts = DepthCounts()
    counts.add(np.array([[0.0, 1.0], [np.nan, 2.0]], dtype=np.float32))
    out = signals(chain, counts)
    # scales 2, 2, 3: median 2, std sqrt(2/9) / 2; chain 1 -> 2 -> 2 -> 3: largest jump 1 / 2
    assert out["windows"] == 4 and out["scale_median"] == 2.0
    assert out["scale_spread"] == pytest.approx(np.sqrt(2 / 9) / 2)
    assert out["scale_max_jump"] == pytest.approx(0.5)
    # shifts 0 -> 0.1 -> 0.3 -> 0.3: largest jump 0.2
    assert out["shift_max_jump"] == pytest.approx(0.2) and out["fit_residual_max"] == 0.05
    assert out["zero_share"] == 0.25 and out["nonfinite_share"] == 0.25


def test_one_window_videos_have_a_neutral_chain():
    out = signals([], DepthCounts())
    assert out["windows"] == 1 and out["scale_median"] == 1.0 and out["zero_share"] == 0.0


def _row(name, **fields):
    return ManifestRow(video=f"s3://b/{name}.mp4", video_id=name, status="done", **fields)


def test_outliers_are_the_videos_far_from_the_archive_s_median_worst_first():
    rows = [_row(f"v{i}", scale_max_jump=0.01 + 0.001 * i, fit_residual_max=0.01) for i in range(8)]
    rows.append(_row("jumpy", scale_max_jump=0.6, fit_residual_max=0.01))
    rows.append(_row("broken", nonfinite_share=0.01))
    rows.append(_row("flat", zero_share=0.9))
    rows.append(ManifestRow(video="s3://b/bad.mp4", video_id="bad", error="not a video"))
    flagged = flag_outliers(rows)
    assert [r.video_id for r in flagged] == ["broken", "flat", "jumpy"]
    assert "scale_max_jump 0.6" in flagged[2].outlier_reasons
    assert not any(r.outlier for r in rows if r.video_id.startswith("v"))
    assert not rows[-1].outlier  # failed videos are not ranked


def test_manifest_rows_round_trip_through_parquet():
    row = _row("a/b", files=["depth.npz", "metadata.json"], segments=3, scale_median=1.5)
    table = manifest_table([row])
    assert table.schema == MANIFEST_SCHEMA
    assert ManifestRow.from_dict(table.to_pylist()[0]) == row
