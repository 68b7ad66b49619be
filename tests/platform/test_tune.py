"""`vda tune`: Ray Tune + ASHA over real TorchTrainer trials on S3 shards, tracked in MLflow.

Each sweep runs as users run it: `vda tune --config sweep.yaml` in its own
process, as a Ray job on the two-node test cluster. A job's actors and
placement groups end with it; sharing the in-process test cluster, a trial
would compete with whatever earlier tests left running there.
"""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from mlflow.tracking import MlflowClient

from vda.platform.storage import read_bytes
from vda.platform.tune.results import EARLY_STOPPED, ERRORED, FINISHED

pytestmark = pytest.mark.integration

STEPS = 4


def _train(tmp_path, shards, **extra):
    base = {
        "data": {
            "train": shards,
            "clip": {
                "clip_len": 4,
                "batch_size": 2,
                "windows_per_chunk": 4,
                # the defaults: with 0.2 each the trial's first batch waited 50 s, not 20
                "read_cpus": 0.5,
                "decode_cpus": 0.5,
                "augment": {"height": 28, "width": 42, "max_scale": 1.2},
            },
            "val_clips": 2,
        },
        "optim": {"lr": 2e-3, "warmup_steps": 1},
        "epochs": 2,
        "steps_per_epoch": STEPS,
        "num_workers": 2,
        "cpus_per_worker": 0.5,  # + 0.1 trial driver + 1 for its data: 1.6 CPUs with one worker
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db", "experiment": "sweeps"},
    }
    base.update(extra)
    return base


def _vda_tune(sweep: dict, tmp_path: Path, cluster) -> subprocess.CompletedProcess:
    address, _, env = cluster
    path = tmp_path / f"{sweep['name']}.yaml"
    path.write_text(yaml.safe_dump(sweep))
    command = [str(Path(sys.executable).parent / "vda"), "tune", "--config", str(path)]
    out = subprocess.run(
        command, env={**env, "RAY_ADDRESS": address}, capture_output=True, text=True, timeout=900
    )
    assert out.returncode in (0, 1), out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _results(root: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(read_bytes(f"{root}/results.csv").decode())))


def _parent(client, name):
    experiment = client.get_experiment_by_name("sweeps")
    runs = client.search_runs(
        [experiment.experiment_id], filter_string=f"tags.`vda.sweep_name` = '{name}'"
    )
    assert len(runs) == 1
    return runs[0]


def _children(client, parent_id):
    runs = client.search_runs(
        [client.get_run(parent_id).info.experiment_id],
        filter_string=f"tags.`mlflow.parentRunId` = '{parent_id}'",
    )
    return {run.data.tags["vda.trial_id"]: run for run in runs}


def _last(client, run_id, key):
    return sorted((m.step, m.value) for m in client.get_metric_history(run_id, key))[-1][1]


def test_asha_sweep_stops_the_weak_trial_and_tracks_every_trial(
    tmp_path, synthetic_shards, shards_bucket, two_node_cluster
):
    # Arranged so ASHA must stop a trial: with TGM weighted 1000 the training loss is
    # orders of magnitude above the weight-0 trial's. Trials run one at a time and the
    # first takes the first grid value (weight 0), so the weight-1000 trial reaching
    # epoch 1 meets a rung held by a weight-0 loss far below it and is stopped. One DDP
    # worker a trial: stopping a trial is the same whatever its worker count (test_train
    # covers DDP), and each trial's start costs a worker process less.
    root = f"s3://{shards_bucket}/sweeps/asha"
    sweep = {
        "name": "asha",
        "storage_path": f"s3://{shards_bucket}/sweeps",
        "train": _train(tmp_path, synthetic_shards, num_workers=1),
        "space": {"loss.tgm_weight": {"grid": [0.0, 1000.0]}},
        "metric": "train_loss",
        "scheduler": {"kind": "asha", "grace_period": 1, "reduction_factor": 2},
        "max_concurrent_trials": 1,
    }
    out = _vda_tune(sweep, tmp_path, two_node_cluster)
    assert out.returncode == 0 and "best trial" in out.stdout

    rows = _results(root)
    assert len(rows) == 2
    assert [(float(r["loss.tgm_weight"]), r["status"]) for r in rows] == [
        (0.0, FINISHED),
        (1000.0, EARLY_STOPPED),
    ], rows
    stopped = [r for r in rows if r["status"] == EARLY_STOPPED]
    assert all(r["epochs"] == "1" for r in stopped)  # the one rung below max_t = 2 epochs
    assert all(r["epochs"] == "2" for r in rows if r["status"] == FINISHED)
    values = [float(r["train_loss"]) for r in rows]
    assert values == sorted(values)  # the table is sorted by the metric

    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    parent = _parent(client, "asha")
    assert parent.info.status == "FINISHED"
    assert parent.data.params["space.loss.tgm_weight"] == "grid [0.0, 1000.0]"
    assert parent.data.metrics["trials_early_stopped"] == len(stopped)
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert {"results.csv", "best_config.yaml", "best_trial.json"} <= artifacts
    children = _children(client, parent.info.run_id)
    assert set(children) == {r["trial_id"] for r in rows}
    for row in rows:
        child = children[row["trial_id"]]
        assert child.data.tags["vda.trial_status"] == row["status"]
        assert child.info.status == ("KILLED" if row["status"] == EARLY_STOPPED else "FINISHED")
        assert float(child.data.params["loss.tgm_weight"]) == float(row["loss.tgm_weight"])
        # what Tune ranked is what the trial logged itself at that epoch (a stopped trial
        # may log the epoch it was finishing when ASHA's stop arrived: MLflow logging no
        # longer slows its steps down)
        history = dict(
            (m.step, m.value)
            for m in client.get_metric_history(child.info.run_id, "epoch/train_loss")
        )
        logged = history[int(row["epochs"]) * STEPS]
        assert logged == pytest.approx(float(row["train_loss"]))

    # the best trial, found independently from the MLflow children, is the one written out
    epochs = {r["trial_id"]: int(r["epochs"]) for r in rows}

    def ranked_value(trial_id):
        history = client.get_metric_history(children[trial_id].info.run_id, "epoch/train_loss")
        return {m.step: m.value for m in history}[epochs[trial_id] * STEPS]

    best_id = min(children, key=ranked_value)
    best_trial = json.loads(read_bytes(f"{root}/best_trial.json"))
    best_config = yaml.safe_load(read_bytes(f"{root}/best_config.yaml"))
    assert best_trial["trial_id"] == best_id == rows[0]["trial_id"]
    assert best_config["loss"]["tgm_weight"] == float(rows[0]["loss.tgm_weight"])
    assert best_trial["checkpoint"].startswith(f"s3://{shards_bucket}/sweeps/asha/train/")

    # a rerun with the same name redoes nothing: same trials, same numbers, no new runs
    again = _vda_tune(sweep, tmp_path, two_node_cluster)
    assert "resuming sweep asha" in again.stdout
    assert _results(root) == rows
    assert set(_children(client, parent.info.run_id)) == set(children)


# make test: test_checkpoints covers the choice of the checkpoint to resume from, test_train's
# killed worker the restart from it, and the ASHA test a sweep's rerun
@pytest.mark.long
def test_interrupted_sweep_resumes_its_unfinished_trial(
    tmp_path, synthetic_shards, shards_bucket, two_node_cluster
):
    # the trial's one worker dies once two steps into epoch 2, after the epoch-1
    # checkpoint; with no retries the trial errors and the sweep ends: an interrupted sweep
    root = f"s3://{shards_bucket}/sweeps/interrupted"
    sweep = {
        "name": "interrupted",
        "storage_path": f"s3://{shards_bucket}/sweeps",
        "train": _train(
            tmp_path,
            synthetic_shards,
            num_workers=1,
            fault={"fail_at_step": STEPS + 2, "fail_rank": 0},
        ),
        "space": {"loss.tgm_weight": {"grid": [1.0]}},
        "scheduler": {"kind": "fifo"},
    }
    _vda_tune(sweep, tmp_path, two_node_cluster)
    (row,) = _results(root)
    assert row["status"] == ERRORED
    client = MlflowClient(f"sqlite:///{tmp_path}/mlflow.db")
    (child,) = _children(client, _parent(client, "interrupted").info.run_id).values()
    assert child.info.status == "FAILED"
    assert len(client.get_metric_history(child.info.run_id, "epoch/train_loss")) == 1

    again = _vda_tune(sweep, tmp_path, two_node_cluster)
    assert again.returncode == 0 and "resuming sweep interrupted" in again.stdout
    (row,) = _results(root)
    assert row["status"] == FINISHED and row["epochs"] == "2"
    (child,) = _children(client, _parent(client, "interrupted").info.run_id).values()
    assert child.data.tags["vda.trial_status"] == FINISHED
    # resumed from the epoch-1 checkpoint found in storage, not restarted: every step
    # logged once (the two steps of epoch 2 done before the failure were still in the
    # worker's MLflow buffer, which is flushed at checkpoints, and were redone after the resume)
    steps = sorted(m.step for m in client.get_metric_history(child.info.run_id, "train/loss"))
    assert steps == list(range(1, 2 * STEPS + 1))
