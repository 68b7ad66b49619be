"""Sweep files: search spaces checked before any trial starts, and trial resource arithmetic."""

from __future__ import annotations

import pytest
import yaml

from vda.jobs.cli import main
from vda.platform.core.config import ConfigError, build
from vda.platform.tune.config import SweepConfig, load_sweep
from vda.platform.tune.results import (
    EARLY_STOPPED,
    ERRORED,
    FINISHED,
    TrialRow,
    sort_rows,
    to_csv,
    trial_status,
)
from vda.platform.tune.space import parse_dimension, trial_config, validate_space
from vda.platform.tune.sweep import concurrent_trials, pin_paths, trial_cpus


def _sweep(**fields):
    return build(SweepConfig, {"space": {"loss.tgm_weight": {"grid": [0.0, 1.0]}}, **fields})


@pytest.mark.parametrize(
    ("space", "message"),
    [
        (
            {"loss.tgm_wieght": {"grid": [1.0]}},
            "search space loss.tgm_wieght=1.0: .*unknown config key",
        ),
        (
            {"data.clip.clip_len": {"choice": [16, 48]}},
            "data.clip.clip_len=48.*exceeds model.num_frames 32",
        ),
        (
            {"optim.lr": {"loguniform": [0.0, 1e-3]}},
            "search space optim.lr: loguniform needs low > 0",
        ),
        ({"optim.lr": {"between": [1, 2]}}, "search space optim.lr: unknown kind 'between'"),
        ({"name": {"grid": ["a"]}}, "search space name: each trial sets 'name' itself"),
        ({"data.clip.clip_len": {"randint": [8, 40]}}, "data.clip.clip_len=39.*exceeds"),
        ({"optim.lr": {"grid": ["fast"]}}, "optim.lr='fast'.*expected a number"),
    ],
)
def test_bad_search_space_fails_naming_the_key(space, message):
    with pytest.raises(ConfigError, match=message):
        validate_space(build(SweepConfig, {"space": space}))


def test_combinations_are_checked_together():
    sweep = build(
        SweepConfig,
        {
            "space": {
                "model.num_frames": {"grid": [16, 32]},
                "data.clip.clip_len": {"grid": [8, 24]},
            }
        },
    )
    with pytest.raises(
        ConfigError, match=r"combination model\.num_frames=16, data\.clip\.clip_len=24"
    ):
        validate_space(sweep)


def test_good_space_parses_every_kind():
    sweep = _sweep(
        space={
            "loss.tgm_weight": {"grid": [0.0, 1.0, 10.0]},
            "data.clip.clip_len": {"choice": [16, 24, 32]},
            "optim.lr": {"loguniform": [1e-5, 1e-3]},
            "optim.weight_decay": {"uniform": [0.0, 0.1]},
            "seed": {"randint": [0, 100]},
        }
    )
    kinds = {d.key: d.kind for d in validate_space(sweep)}
    assert kinds == {
        "loss.tgm_weight": "grid",
        "data.clip.clip_len": "choice",
        "optim.lr": "loguniform",
        "optim.weight_decay": "uniform",
        "seed": "randint",
    }
    assert parse_dimension("seed", {"randint": [0, 100]}).probe_values() == (0, 99)


def test_optuna_cannot_run_a_grid():
    with pytest.raises(ConfigError, match="optuna samples; it cannot run a grid"):
        validate_space(_sweep(search={"algorithm": "optuna"}))


def test_unknown_metric_and_empty_space_are_rejected():
    with pytest.raises(ConfigError, match="metric 'val_absrel' is not reported"):
        _sweep(metric="val_absrel")
    with pytest.raises(ConfigError, match="space is empty"):
        build(SweepConfig, {})


def test_trial_config_applies_sampled_values_over_the_base():
    config = trial_config(
        {"epochs": 3, "loss": {"ssi_weight": 2.0}},
        {"loss.tgm_weight": 5.0, "data.clip.clip_len": 16},
        name="s-1",
    )
    assert (config.epochs, config.loss.ssi_weight, config.loss.tgm_weight) == (3, 2.0, 5.0)
    assert config.data.clip.clip_len == 16 and config.name == "s-1"


def test_base_file_is_folded_in_relative_to_the_sweep_file(tmp_path):
    (tmp_path / "base.yaml").write_text(yaml.safe_dump({"epochs": 5, "optim": {"lr": 1e-3}}))
    (tmp_path / "sweep.yaml").write_text(
        yaml.safe_dump(
            {
                "base": "base.yaml",
                "train": {"optim": {"warmup_steps": 3}},
                "space": {"optim.lr": {"loguniform": [1e-5, 1e-3]}},
            }
        )
    )
    sweep = load_sweep(str(tmp_path / "sweep.yaml"), ["num_samples=4"])
    assert sweep.base is None and sweep.num_samples == 4
    assert sweep.train == {"epochs": 5, "optim": {"lr": 1e-3, "warmup_steps": 3}}


def test_concurrency_follows_the_resources():
    sweep = _sweep(trial_driver_cpus=0.1)
    base = trial_config({"num_workers": 2, "cpus_per_worker": 0.5}, {})
    # 0.1 driver + 2 x 0.5 workers + 0.5 read + 0.5 decode
    assert trial_cpus(sweep, base) == pytest.approx(2.1)
    assert concurrent_trials(sweep, base, {"CPU": 2.0}) == 1  # never zero
    assert concurrent_trials(sweep, base, {"CPU": 64.0}) == 30
    gpu = trial_config({"num_workers": 4, "use_gpu": True}, {})
    assert concurrent_trials(sweep, gpu, {"CPU": 64.0, "GPU": 8.0}) == 2  # GPUs bind first
    assert concurrent_trials(_sweep(max_concurrent_trials=3), base, {"CPU": 2.0}) == 3


def test_paths_are_pinned_for_trials_that_run_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    pinned = pin_paths({"data": {"train": "data/x", "val": "s3://b/v"}}, "sqlite:////m.db")
    assert pinned["data"]["train"] == str(tmp_path / "data/x")
    assert pinned["data"]["val"] == "s3://b/v"
    assert pinned["mlflow"]["tracking_uri"] == "sqlite:////m.db"


def test_rows_sort_best_first_and_statuses_follow_epochs():
    rows = [
        TrialRow("b", "s-b", FINISHED, {"x": 1}, 2, 0.3),
        TrialRow("c", "s-c", ERRORED, {"x": 2}, 0, None),
        TrialRow("a", "s-a", EARLY_STOPPED, {"x": 3}, 1, 0.1),
    ]
    assert [r.trial_id for r in sort_rows(rows, "min")] == ["a", "b", "c"]
    assert [r.trial_id for r in sort_rows(rows, "max")] == ["b", "a", "c"]
    assert trial_status(1, 3, False) == EARLY_STOPPED
    assert trial_status(3, 3, False) == FINISHED and trial_status(3, 3, True) == ERRORED
    assert (
        to_csv(sort_rows(rows, "min"), "val_abs_rel")
        .splitlines()[1]
        .startswith("a,early_stopped,1,3,0.1,")
    )


def test_cli_rejects_a_window_of_48_before_starting_anything(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(
        yaml.safe_dump({"name": "bad", "space": {"data.clip.clip_len": {"grid": [16, 48]}}})
    )
    assert main(["tune", "--config", str(sweep)]) == 2
    error = capsys.readouterr().err
    assert "data.clip.clip_len=48" in error and error.count("\n") == 1
    assert not (tmp_path / "mlruns.db").exists() and not (tmp_path / "runs").exists()
    sweep.write_text(yaml.safe_dump({"space": {"data.clip.clip_len": {"grid": [16, 32]}}}))
    assert main(["tune", "--config", str(sweep), "--check"]) == 0
    assert "search space OK" in capsys.readouterr().out
