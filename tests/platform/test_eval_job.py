"""`vda eval` as a Ray job: a known answer, missing and corrupt inputs, checkpoints and T = 1."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from vda.jobs.cli import main
from vda.model.checkpoint import save_checkpoint
from vda.model.config import ModelConfig
from vda.model.network import VideoDepthAnything
from vda.platform.core.config import build
from vda.platform.data.pipeline import read_manifest
from vda.platform.data.prepare import PrepareConfig, SyntheticOptions, prepare
from vda.platform.eval.config import EvalConfig
from vda.platform.eval.job import run_eval
from vda.platform.eval.outputs import read_sequence

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def heldout(tmp_path_factory, ray_cluster):
    data = tmp_path_factory.mktemp("eval") / "data"
    prepare(
        PrepareConfig(
            dst=str(data),
            chunk_frames=6,
            synthetic=SyntheticOptions(sequences=3, frames=11, height=28, width=42, seed=7),
        ),
        progress=lambda _: None,
    )
    return str(data)


def test_ground_truth_fed_back_scores_perfectly_and_bad_sequences_are_recorded(
    tmp_path, heldout, capsys
):
    manifest = read_manifest(heldout)
    good, missing, corrupt = (e["sequence"] for e in manifest["sequences"])
    truth = read_sequence(heldout, manifest["sequences"][0])
    depth, valid = truth.depth, truth.valid
    disparity = np.where(valid, 1.0 / np.where(valid, depth, 1.0), 0.0)
    (tmp_path / "out" / good).mkdir(parents=True)
    np.savez_compressed(
        tmp_path / "out" / good / "depth.npz",
        depth=(2 * disparity + 0.25).astype(np.float32),
        frame_index=np.arange(len(depth)),
    )
    (tmp_path / "out" / corrupt).mkdir()
    (tmp_path / "out" / corrupt / "depth.npz").write_bytes(b"not a zip file")
    mlflow_uri = f"sqlite:///{tmp_path}/mlflow.db"
    code = main(
        [
            "eval",
            "--outputs",
            str(tmp_path / "out"),
            "--dataset",
            heldout,
            "--report",
            str(tmp_path / "reports"),
            "--name",
            "known",
            f"mlflow.tracking_uri={mlflow_uri}",
        ]
    )
    assert code == 1  # a sequence failed: the exit status says so, the report holds the rest
    report = json.loads((tmp_path / "reports/known/report.json").read_text())
    overall = report["modes"]["outputs"]["overall"]
    assert overall["sequences"] == 1
    assert overall["abs_rel"] < 1e-5 and overall["delta1"] == 1.0 and overall["rmse"] < 1e-4
    assert overall["tae"] < 3.0  # nearest-pixel splatting of the reprojection only
    assert report["missing"] == [missing]
    assert (
        list(report["failed"]) == [corrupt] and "is not a depth .npz" in report["failed"][corrupt]
    )
    rows = list(csv.DictReader(io.StringIO((tmp_path / "reports/known/report.csv").read_text())))
    assert [(r["mode"], r["sequence"]) for r in rows] == [("outputs", good), ("outputs", "overall")]
    run = MlflowClient(mlflow_uri).search_runs(
        [MlflowClient(mlflow_uri).get_experiment_by_name("vda").experiment_id]
    )[0]
    assert run.data.metrics["outputs/abs_rel"] == pytest.approx(overall["abs_rel"])
    assert run.data.metrics["sequences_failed"] == 1 and run.info.status == "FAILED"
    assert f"FAILED {corrupt}" in capsys.readouterr().out


def test_checkpoint_runs_under_each_strategy_side_by_side(tmp_path, heldout):
    torch.manual_seed(0)
    model = VideoDepthAnything(ModelConfig(size="tiny", num_frames=16))
    # the temporal layers start as identities (zero-initialised output); as after training,
    # give them weights so that temporal context changes the prediction
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "temporal" in name:
                parameter.normal_(0, 0.2)
    save_checkpoint(model, tmp_path / "model.pt")
    config = build(
        EvalConfig,
        {
            "name": "strategies",
            "dataset": heldout,
            "checkpoint": str(tmp_path / "model.pt"),
            "strategies": ["keyframes", "independent_windows", "aligned_windows", "per_frame"],
            "inference": {"input_size": 28, "window": {"length": 16, "interp": 4, "key_offset": 2}},
            "frame_errors": True,
            "report": str(tmp_path / "reports"),
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
        },
    )
    report = run_eval(config, progress=lambda _: None)
    assert not report.failed and not report.missing
    assert set(report.modes) == set(config.strategies)
    for block in report.modes.values():
        assert block["overall"]["sequences"] == 3
        for values in block["sequences"].values():
            assert values["frames"] == 11 and 0 <= values["delta1"] <= 1
            assert len(values["frame_abs_rel"]) == 11
    # 11 frames fit one 16-frame window: the three windowed strategies are the same computation
    video = report.modes["keyframes"]["overall"]
    for mode in ("independent_windows", "aligned_windows"):
        assert report.modes[mode]["overall"]["abs_rel"] == pytest.approx(video["abs_rel"], rel=1e-4)
    # T = 1 is a different model input (no temporal context): different numbers
    assert report.modes["per_frame"]["overall"]["abs_rel"] != pytest.approx(
        video["abs_rel"], rel=1e-4
    )


def test_unreadable_checkpoint_is_one_clear_error(tmp_path, heldout, capsys):
    (tmp_path / "broken.pt").write_bytes(b"garbage")
    code = main(
        [
            "eval",
            "--checkpoint",
            str(tmp_path / "broken.pt"),
            "--dataset",
            heldout,
            "--report",
            str(tmp_path / "r"),
        ]
    )
    assert code == 2
    assert capsys.readouterr().err.count("\n") == 1
    assert not (tmp_path / "r").exists()
