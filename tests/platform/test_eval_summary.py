"""The experiment summary: tables from eval reports and the sweep table, and the plots."""

from __future__ import annotations

import json

from vda.platform.eval.summary import summarize


def _report(root, name, modes):
    folder = root / "reports" / name
    folder.mkdir(parents=True)
    (folder / "report.json").write_text(json.dumps({"modes": modes}))


def _block(abs_rel, tae, frames=None):
    sequence = {"abs_rel": abs_rel, "delta1": 0.9, "tae": tae}
    if frames is not None:
        sequence["frame_abs_rel"] = frames
    return {
        "overall": {"abs_rel": abs_rel, "delta1": 0.9, "tae": tae},
        "sequences": {"s0": sequence},
    }


def test_tables_and_plots_come_from_the_reports(tmp_path):
    root, docs = tmp_path / "runs", tmp_path / "docs"
    for name, value in (("exp1-ssi", 0.2), ("exp1-tgm-official", 0.18), ("exp3-diffcnn", 0.17)):
        _report(
            root, name, {"keyframes": _block(value, 1.5), "per_frame": _block(value + 0.1, 3.0)}
        )
    drift = [[i, 0.1 + 0.001 * i] for i in range(300)]
    _report(
        root,
        "exp2-long",
        {"keyframes": _block(0.1, 1.0, drift), "independent_windows": _block(0.4, 9.0, drift)},
    )
    sweep = root / "sweeps" / "exp4-sweep"
    sweep.mkdir(parents=True)
    (sweep / "results.csv").write_text(
        "trial_id,status,epochs,data.clip.clip_len,loss.tgm_weight,val_abs_rel,val_delta1,val_tae,train_loss,checkpoint\n"
        "t1,finished,3,8,1.0,0.15,0.8,2.0,0.5,/x\n"
    )
    text = summarize(root, docs)
    assert "| SSI only | overlap interpolation + key frames | 0.2000 | 0.9000 | 1.500 |" in text
    assert "| SSI + TGM (paper) | (not run) |" in text
    assert "| STH head + diff-CNN | per frame (T = 1) | 0.2700 |" in text
    # first / last 100 frames of the drift curve: 0.1 + 0.001 * mean(0..99) and mean(200..299)
    assert "| no overlap | 0.4000 | 0.9000 | 9.000 | 0.1495 | 0.3495 |" in text
    assert "| t1 | finished | 3 | 8 | 1.0 | 0.1500 | 0.8000 | 2.0000 |" in text
    assert (docs / "results" / "tables.md").read_text().strip() == text.strip()
    for plot in ("exp2_drift.png", "exp1_exp3_heldout.png"):
        assert (docs / "results" / plot).read_bytes()[:4] == b"\x89PNG"
