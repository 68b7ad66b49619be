"""`vda tune`: Ray Tune + ASHA over real TorchTrainer trials on S3 shards, tracked in MLflow."""

from __future__ import annotations

import json

import pytest
import yaml
from mlflow.tracking import MlflowClient

from vda.platform.core.config import build
from vda.platform.storage import read_bytes
from vda.platform.tune.config import SweepConfig
from vda.platform.tune.results import EARLY_STOPPED, FINISHED
from vda.platform.tune.sweep import run_sweep

pytestmark = pytest.mark.integration

STEPS = 4


def _train(tmp_path, shards, **extra):
    base = {
        "data": {
            "train": shards,
            "clip": {
                "clip_len": 4, "batch_size": 2, "windows_per_chunk": 4,
                "read_cpus": 0.2, "decode_cpus": 0.2,
                "augment": {"height": 28, "width": 42, "max_scale": 1.2},
            },
            "val_clips": 2,
        },
        "optim": {"lr": 2e-3, "warmup_steps": 1},
        "epochs": 2,
        "steps_per_epoch": STEPS,
        "num_workers": 2,
        "cpus_per_worker": 0.5,  # + 0.1 trial driver + 0.4 for its data pipeline: fits 2 CPUs
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "sweeps"},
    }  # fmt: skip
    base.update(extra)
    return base


def _children(client, parent_id):
    runs = client.search_runs(
        [client.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
    )
    return {run.data.tags["vda.trial_id"]: run for run in runs}


def _last(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))[-1][1]


def test_asha_sweep_stops_the_weak_trial_and_tracks_every_trial(
    tmp_path, synthetic_shards, shards_bucket, ray_cluster
):
    # Arranged so ASHA must stop a trial: with TGM weighted 1000 the training loss is
    # orders of magnitude above the weight-0 trials'. Trials run one at a time and the
    # first takes the first grid values (weight 0), so the first weight-1000 trial to
    # reach epoch 1 meets a recorded weight-0 loss far below it and is stopped.
    sweep = build(
        SweepConfig,
        {
            "name": "asha",
            "storage_path": f"s3://{shards_bucket}/sweeps",
            "train": _train(tmp_path, synthetic_shards),
            "space": {
                "loss.tgm_weight": {"grid": [0.0, 1000.0]},
                "data.clip.clip_len": {"grid": [4, 3]},
            },
            "metric": "train_loss",
            "scheduler": {"kind": "asha", "grace_period": 1, "reduction_factor": 2},
            "max_concurrent_trials": 1,
        },
    )
    result = run_sweep(sweep, progress=lambda _: None)

    assert len(result.rows) == 4
    assert {(r.sampled["loss.tgm_weight"], r.sampled["data.clip.clip_len"]) for r in result.rows} == {
        (0.0, 4), (0.0, 3), (1000.0, 4), (1000.0, 3)
    }  # fmt: skip
    stopped = [r for r in result.rows if r.status == EARLY_STOPPED]
    assert stopped, [(r.sampled, r.status, r.value) for r in result.rows]
    assert all(r.sampled["loss.tgm_weight"] == 1000.0 and r.epochs == 1 for r in stopped)
    for row in result.rows:
        if row.status == FINISHED:
            assert row.epochs == 2
    values = [r.value for r in result.rows]
    assert values == sorted(values)  # the table is sorted by the metric

    client = MlflowClient(result.tracking_uri)
    parent = client.get_run(result.mlflow_run_id)
    assert parent.info.status == "FINISHED"
    assert parent.data.params["space.loss.tgm_weight"] == "grid [0.0, 1000.0]"
    assert parent.data.metrics["trials_early_stopped"] == len(stopped)
    artifacts = {a.path for a in client.list_artifacts(result.mlflow_run_id)}
    assert {"results.csv", "best_config.yaml", "best_trial.json"} <= artifacts
    children = _children(client, result.mlflow_run_id)
    assert set(children) == {r.trial_id for r in result.rows}
    for row in result.rows:
        child = children[row.trial_id]
        assert child.data.tags["vda.trial_status"] == row.status
        assert child.info.status == ("KILLED" if row.status == EARLY_STOPPED else "FINISHED")
        assert child.data.params["loss.tgm_weight"] == str(row.sampled["loss.tgm_weight"])
        # what Tune ranked is what the trial logged itself
        assert _last(client, child.info.run_id, "epoch/train_loss") == pytest.approx(row.value)

    # the best trial, found independently from the MLflow children, is the one written out
    best_id = min(
        children, key=lambda t: _last(client, children[t].info.run_id, "epoch/train_loss")
    )
    best_trial = json.loads(read_bytes(f"{result.output}/best_trial.json"))
    best_config = yaml.safe_load(read_bytes(f"{result.output}/best_config.yaml"))
    assert best_trial["trial_id"] == best_id == result.best.trial_id
    assert best_config["loss"]["tgm_weight"] == result.best.sampled["loss.tgm_weight"]
    assert best_config["data"]["clip"]["clip_len"] == result.best.sampled["data.clip.clip_len"]
    assert best_trial["checkpoint"].startswith(f"s3://{shards_bucket}/sweeps/asha/train/")
    csv_lines = read_bytes(f"{result.output}/results.csv").decode().splitlines()
    assert len(csv_lines) == 5 and csv_lines[1].startswith(best_id)

    # a rerun with the same name redoes nothing: same trials, same numbers, no new runs
    again = run_sweep(sweep, progress=lambda _: None)
    assert again.resumed
    assert [(r.trial_id, r.value) for r in again.rows] == [
        (r.trial_id, r.value) for r in result.rows
    ]
    assert set(_children(client, result.mlflow_run_id)) == set(children)
