"""`vda eval` of official-layout weights, `vda infer` outputs by frame index, suites, sweeps."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest
import torch
import yaml
from helpers import randomize, tiny_model
from mlflow.tracking import MlflowClient
from videos import write_h264

from vda.jobs.cli import main
from vda.model.checkpoint import official_state_dict, save_checkpoint
from vda.model.config import ModelConfig
from vda.model.metrics import evaluate_sequence
from vda.model.network import VideoDepthAnything
from vda.platform.core.config import build
from vda.platform.data.pipeline import read_manifest
from vda.platform.data.prepare import PrepareConfig, SyntheticOptions, prepare
from vda.platform.eval.config import EvalConfig
from vda.platform.eval.job import run_eval
from vda.platform.eval.outputs import read_sequence
from vda.platform.infer.config import InferConfig
from vda.platform.infer.job import run_infer
from vda.platform.tune.config import load_sweep
from vda.platform.tune.eval_sweep import run_eval_sweep

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def small_set(tmp_path_factory, ray_cluster):
    data = tmp_path_factory.mktemp("official") / "data"
    prepare(
        PrepareConfig(
            dst=str(data),
            dataset="kitti",
            chunk_frames=16,
            synthetic=SyntheticOptions(sequences=2, frames=12, height=28, width=42, seed=5),
        ),
        progress=lambda _: None,
    )
    return str(data)


def _config(tmp_path, dataset, **extra):
    return build(
        EvalConfig,
        {
            "dataset": dataset,
            "report": str(tmp_path / "reports"),
            "inference": {"input_size": 28},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
            **extra,
        },
    )


def test_official_weights_of_another_size_eval_and_metric_files_are_scored_as_metric(
    tmp_path, small_set
):
    torch.manual_seed(0)
    vits = randomize(VideoDepthAnything(ModelConfig(size="vits")), seed=1)
    torch.save(official_state_dict(vits), tmp_path / "video_depth_anything_vits.pth")
    report = run_eval(
        _config(
            tmp_path,
            small_set,
            name="vits",
            strategies=["keyframes"],
            checkpoint=str(tmp_path / "video_depth_anything_vits.pth"),
        ),
        progress=lambda _: None,
    )
    assert not report.failed and set(report.modes) == {"keyframes"}
    assert report.modes["keyframes"]["overall"]["sequences"] == 2

    # the official metric file name: scored as metric depth (no fit) and aligned, labelled
    torch.save(
        official_state_dict(tiny_model(seed=2)), tmp_path / "metric_video_depth_anything_vits.pth"
    )
    metric = run_eval(
        _config(
            tmp_path,
            small_set,
            name="metric",
            strategies=["keyframes"],
            checkpoint=str(tmp_path / "metric_video_depth_anything_vits.pth"),
        ),
        progress=lambda _: None,
    )
    assert set(metric.modes) == {"keyframes/metric", "keyframes/aligned"}
    for values in metric.modes["keyframes/metric"]["sequences"].values():
        assert (values["scale"], values["shift"]) == (1.0, 0.0)
    for values in metric.modes["keyframes/aligned"]["sequences"].values():
        assert values["scale"] != 1.0
    assert "no alignment" in metric.modes["keyframes/metric"]["label"]
    assert "aligned" in metric.modes["keyframes/aligned"]["label"]


def test_image_model_baseline_is_the_dav2_head_beside_the_video_head_at_t1(tmp_path, small_set):
    video = tiny_model(seed=4)  # randomised: the temporal modules are not identities
    save_checkpoint(video, tmp_path / "video.pt")
    image = {
        k.replace("head.", "depth_head.", 1) if k.startswith("head.") else k: v
        for k, v in official_state_dict(video).items()
        if not k.startswith("head.motion_modules.")
    }
    torch.save(image, tmp_path / "depth_anything_v2_vits.pth")
    report = run_eval(
        _config(
            tmp_path,
            small_set,
            name="baselines",
            checkpoint=str(tmp_path / "video.pt"),
            image_model=str(tmp_path / "depth_anything_v2_vits.pth"),
        ),
        progress=lambda _: None,
    )
    assert set(report.modes) == {"keyframes", "per_frame", "image_model"}
    assert "Depth Anything V2" in report.modes["image_model"]["label"]
    assert "T = 1" in report.modes["per_frame"]["label"]
    # same encoder and DPT weights; only the temporal modules differ: at T = 1 they still act
    image_abs_rel = report.modes["image_model"]["overall"]["abs_rel"]
    assert image_abs_rel != pytest.approx(report.modes["per_frame"]["overall"]["abs_rel"])


def test_frame_index_of_outputs_made_with_target_fps_matches_the_right_frames(
    tmp_path, ray_cluster
):
    data = tmp_path / "data"
    prepare(
        PrepareConfig(
            dst=str(data),
            chunk_frames=32,
            synthetic=SyntheticOptions(sequences=1, frames=30, height=28, width=42, seed=9),
        ),
        progress=lambda _: None,
    )
    entry = read_manifest(str(data))["sequences"][0]
    truth = read_sequence(str(data), entry)
    videos = tmp_path / "videos"
    videos.mkdir()
    write_h264(
        videos / f"{entry['sequence']}.mkv", list(truth.rgb), fps=30, codec="ffv1", pix_fmt="bgr0"
    )
    save_checkpoint(tiny_model(seed=6), tmp_path / "tiny.pt")
    mlflow = {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}
    infer = build(
        InferConfig,
        {
            "input": str(videos),
            "output": str(tmp_path / "depth"),
            "checkpoint": str(tmp_path / "tiny.pt"),
            "input_size": 28,
            "decode": {"target_fps": 10},
            "actors": {"num_actors": 1, "cpus_per_actor": 1.0},
            "mlflow": mlflow,
        },
    )
    assert run_infer(infer, progress=lambda _: None).count("done") == 1
    with np.load(tmp_path / "depth" / entry["sequence"] / "depth.npz") as archive:
        numbers, depth = archive["frame_index"], archive["depth"].astype(np.float32)
    assert numbers.tolist() == list(range(0, 30, 3))  # source frames, not positions
    report = run_eval(
        _config(tmp_path, str(data), name="fps", outputs=str(tmp_path / "depth")),
        progress=lambda _: None,
    )
    values = report.modes["outputs"]["sequences"][entry["sequence"]]
    cap = report.max_depth
    matched = evaluate_sequence(depth, truth.depth[0::3], cap, masks=truth.valid[0::3])
    by_position = evaluate_sequence(depth, truth.depth[:10], cap, masks=truth.valid[:10])
    assert values["frames"] == 10
    assert values["abs_rel"] == pytest.approx(matched.abs_rel, rel=1e-6)
    assert values["abs_rel"] != pytest.approx(by_position.abs_rel, rel=1e-3)


def test_suite_runs_models_by_data_sets_as_one_job_and_writes_the_table(tmp_path, small_set):
    save_checkpoint(tiny_model(seed=7), tmp_path / "a.pt")
    torch.save(official_state_dict(tiny_model(seed=8)), tmp_path / "video_depth_anything_vitl.pth")
    suite = {
        "name": "table",
        "report": str(tmp_path / "reports"),
        "inference": {"input_size": 28},
        "datasets": [
            {"name": "kitti", "path": small_set, "protocol": "official-110"},
            {"name": "heldout", "path": small_set},
        ],
        "models": [
            {"name": "my model (v1)", "checkpoint": str(tmp_path / "a.pt")},
            {"name": "VDA-L", "checkpoint": str(tmp_path / "video_depth_anything_vitl.pth")},
        ],
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
    }
    (tmp_path / "suite.yaml").write_text(yaml.safe_dump(suite))
    assert main(["eval", "--suite", str(tmp_path / "suite.yaml")]) == 0
    folder = tmp_path / "reports" / "table"
    markdown = (folder / "report.md").read_text()
    assert (
        "| model | inference | kitti AbsRel | kitti δ1 | heldout AbsRel | heldout δ1 | heldout TAE |"
        in markdown
    )
    assert "| VDA-L (paper) | published |" in markdown and "arXiv 2501.12375" in markdown
    rows = list(csv.DictReader(io.StringIO((folder / "report.csv").read_text())))
    assert len(rows) == 2 * (2 + 3)  # two models x (kitti: AbsRel, delta1; heldout: 3)
    pair = json.loads((folder / "my-model-v1--kitti" / "report.json").read_text())  # slugged
    assert pair["protocol"]["protocol"] == "official-110"
    ours = next(
        r
        for r in rows
        if r["model"] == "my model (v1)" and r["dataset"] == "kitti" and r["metric"] == "abs_rel"
    )
    assert float(ours["ours"]) == pytest.approx(pair["modes"]["keyframes"]["overall"]["abs_rel"])
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    runs = client.search_runs([client.get_experiment_by_name("vda").experiment_id])
    parent = next(r for r in runs if r.data.tags.get("vda.eval_suite") == "table")
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 4 and parent.info.status == "FINISHED"
    assert parent.data.metrics["my-model-v1/keyframes/kitti/abs_rel"] == pytest.approx(
        float(ours["ours"]), rel=1e-5
    )


def test_window_sweep_eval_only_gives_one_child_run_per_setting(tmp_path, small_set, capsys):
    model = tiny_model(seed=10, num_frames=16)
    save_checkpoint(model, tmp_path / "tiny.pt")
    sweep = {
        "name": "windows",
        "storage_path": str(tmp_path / "sweeps"),
        "eval": {
            "checkpoint": str(tmp_path / "tiny.pt"),
            "dataset": small_set,
            "strategies": ["keyframes"],
            "inference": {"input_size": 28},
            "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
        },
        "space": {
            "inference.window.length": {"grid": [12, 24]},
            "inference.window.interp": {"grid": [2]},
            "inference.window.key_offset": {"grid": [2]},
        },
        "metric": "abs_rel",
    }
    sweep_file = tmp_path / "sweep.yaml"
    sweep_file.write_text(yaml.safe_dump(sweep))
    # a window longer than the checkpoint's 16 frames fails before any trial
    assert main(["tune", "--config", str(sweep_file), "--check"]) == 2
    assert "length 24 exceeds the checkpoint's 16-frame" in capsys.readouterr().err
    sweep["space"]["inference.window.length"] = {"grid": [12, 16]}
    sweep_file.write_text(yaml.safe_dump(sweep))
    assert main(["tune", "--config", str(sweep_file), "--check"]) == 0
    result = run_eval_sweep(load_sweep(str(sweep_file)), progress=lambda _: None)
    assert [r.status for r in result.rows] == ["finished", "finished"]
    assert sorted(r.sampled["inference.window.length"] for r in result.rows) == [12, 16]
    values = [r.value for r in result.rows]
    assert values == sorted(values) and result.best.value == values[0]
    assert all(np.isfinite(r.metrics["tae"]) for r in result.rows)
    client = MlflowClient(result.tracking_uri)
    runs = client.search_runs([client.get_experiment_by_name("vda").experiment_id])
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == result.mlflow_run_id]
    assert len(children) == 2
    assert {float(c.data.metrics["keyframes/abs_rel"]) for c in children} == set(values)
    table = (tmp_path / "sweeps" / "windows" / "results.csv").read_text()
    assert table.splitlines()[0].startswith("trial_id,status,epochs,inference.window.interp")
    best = yaml.safe_load((tmp_path / "sweeps" / "windows" / "best_config.yaml").read_text())
    assert best["inference"]["window"]["length"] == result.best.sampled["inference.window.length"]
