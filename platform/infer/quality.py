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
import pyarrow as pa
import pyarrow.compute as pc

from vda.model.inference import WindowAlignment

from ..video.process import DepthCounts
from .manifest import ManifestRow, manifest_table

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


def outlier_scores(table: pa.Table) -> dict[int, tuple[float, list[str]]]:
    """{row index: (score, reasons)} of the done rows of a manifest table whose signals
    stand out: column arithmetic, so a million-row manifest costs arrays, not objects."""
    done = np.flatnonzero(pc.equal(table["status"], "done").to_numpy(zero_copy_only=False))
    flagged: dict[int, tuple[float, list[str]]] = {}

    def flag(index: int, score: float, reason: str) -> None:
        total, reasons = flagged.get(index, (0.0, []))
        flagged[index] = (total + score, [*reasons, reason])

    for name, gap in MIN_GAP.items():
        values = table[name].to_numpy()[done].astype(float)
        if len(values) < 3:
            continue
        median = float(np.median(values))
        mad = float(np.median(np.abs(values - median))) * 1.4826
        excess = values - median
        z = excess / mad if mad > 0 else np.where(excess > gap, np.inf, 0.0)
        for i in np.flatnonzero((z > ROBUST_Z) & (excess > gap)):
            reason = f"{name} {values[i]:.3g} (archive median {median:.3g})"
            flag(int(done[i]), min(float(z[i]), 1e6), reason)
    nonfinite = table["nonfinite_share"].to_numpy()
    zero = table["zero_share"].to_numpy()
    for i in done[nonfinite[done] > 0]:
        flag(int(i), 1e9, f"non-finite depth in {nonfinite[i]:.2%} of pixels")
    for i in done[zero[done] > ZERO_SHARE_LIMIT]:
        flag(int(i), 1e7, f"zero depth in {zero[i]:.0%} of pixels")
    return flagged


def flag_outliers(rows: list[ManifestRow]) -> list[ManifestRow]:
    """`outlier_scores` on rows: sets `outlier` / `outlier_reasons` on the done rows; returns
    the flagged rows, worst first."""
    flagged = outlier_scores(manifest_table(rows))
    for index, row in enumerate(rows):
        if row.status == "done":
            row.outlier = index in flagged
            row.outlier_reasons = "; ".join(flagged[index][1]) if index in flagged else ""
    return [rows[i] for i in sorted(flagged, key=lambda i: -flagged[i][0])]
