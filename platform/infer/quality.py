"""Quality signals per video, and the outliers among an archive's videos.

Nobody watches an archive's previews. What shows a video gone wrong without
looking: the per-window alignment (a scale that jumps between windows means
the model's scale drifted or the shot changed under a key frame; a large
key-frame fit residual means the new window disagrees with the old one on
the same frames), and depth that collapsed (a large share of zeros after the
clamp) or broke (non-finite values).

Outliers are flagged against the job's own videos with a robust z-score
(median and MAD, so a few bad videos cannot hide each other), plus two
absolute rules that hold for any archive: any non-finite depth, and more than
half the pixels at zero.
"""

from __future__ import annotations

import numpy as np

from vda.model.inference import WindowAlignment

from ..video.process import DepthCounts
from .manifest import ManifestRow

ROBUST_Z = 5.0  # how far from the archive's median a signal must be to flag a video
MIN_GAP = {"scale_max_jump": 0.05, "fit_residual_max": 0.02, "shift_max_jump": 0.05}
ZERO_SHARE_LIMIT = 0.5


def signals(alignments: list[WindowAlignment], counts: DepthCounts) -> dict[str, float]:
    """The row's quality fields from the alignment chain and the depth counts.

    Scales are compared relative to their median (a scale's units are the
    model's); shifts are in the output's units.
    """
    out = {
        "windows": len(alignments) + 1,
        "zero_share": counts.zero_share,
        "nonfinite_share": counts.nonfinite_share,
    }
    if not alignments:
        return {**out, "scale_median": 1.0}
    scale = np.array([a.scale for a in alignments])
    shift = np.array([a.shift for a in alignments])
    median = float(np.median(scale))
    unit = abs(median) if median else 1.0
    # the first window is the reference: scale 1, shift 0
    chain_scale = np.concatenate([[1.0], scale])
    chain_shift = np.concatenate([[0.0], shift])
    return {
        **out,
        "scale_median": median,
        "scale_spread": float(scale.std() / unit),
        "scale_max_jump": float(np.abs(np.diff(chain_scale)).max() / unit),
        "shift_spread": float(shift.std()),
        "shift_max_jump": float(np.abs(np.diff(chain_shift)).max()),
        "fit_residual_max": float(max(a.residual for a in alignments)),
    }


def flag_outliers(rows: list[ManifestRow]) -> list[ManifestRow]:
    """Set `outlier` / `outlier_reasons` on done rows; returns the flagged, worst first."""
    done = [r for r in rows if r.status == "done"]
    scores: dict[str, float] = {r.video_id: 0.0 for r in done}
    reasons: dict[str, list[str]] = {r.video_id: [] for r in done}
    for name, gap in MIN_GAP.items():
        values = np.array([getattr(r, name) for r in done], dtype=float)
        if len(values) < 3:
            continue
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median))) * 1.4826
        for row, value in zip(done, values):
            excess = value - median
            z = excess / mad if mad > 0 else (np.inf if excess > gap else 0.0)
            if z > ROBUST_Z and excess > gap:
                reasons[row.video_id].append(f"{name} {value:.3g} (archive median {median:.3g})")
                scores[row.video_id] += min(float(z), 1e6)
    for row in done:
        if row.nonfinite_share > 0:
            reasons[row.video_id].append(f"non-finite depth in {row.nonfinite_share:.2%} of pixels")
            scores[row.video_id] += 1e9
        if row.zero_share > ZERO_SHARE_LIMIT:
            reasons[row.video_id].append(f"zero depth in {row.zero_share:.0%} of pixels")
            scores[row.video_id] += 1e7
    flagged = []
    for row in done:
        row.outlier = bool(reasons[row.video_id])
        row.outlier_reasons = "; ".join(reasons[row.video_id])
        if row.outlier:
            flagged.append(row)
    return sorted(flagged, key=lambda r: -scores[r.video_id])
