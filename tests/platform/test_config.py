"""Typed configs: YAML + key=value overrides, with errors that name the key."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from vda.platform.core.config import ConfigError, flatten, load_config, to_dict


@dataclass
class Optim:
    lr: float = 1e-4
    betas: tuple[float, float] = (0.9, 0.999)


@dataclass
class Train:
    name: str = "run"
    epochs: int = 2
    mode: Literal["paper", "official"] = "paper"
    bf16: bool = True
    storage: str | None = None
    optim: Optim = field(default_factory=Optim)


def test_defaults_yaml_and_overrides_compose(tmp_path):
    path = tmp_path / "train.yaml"
    path.write_text("epochs: 5\noptim:\n  lr: 0.001\n")
    config = load_config(Train, path, ["optim.lr=3e-4", "mode=official", "optim.betas=[0.8, 0.9]"])
    assert config.epochs == 5
    assert config.optim.lr == pytest.approx(3e-4)
    assert config.optim.betas == (0.8, 0.9)
    assert config.mode == "official"
    assert config.name == "run"


def test_integers_are_accepted_for_floats_but_not_the_reverse():
    assert load_config(Train, None, ["optim.lr=1"]).optim.lr == 1.0
    with pytest.raises(ConfigError, match=r"epochs: expected an integer, got 2\.5"):
        load_config(Train, None, ["epochs=2.5"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("optim.lrr=1", "unknown config key(s) optim.lrr"),
        ("mode=magic", "mode: 'magic' is not one of ['paper', 'official']"),
        ("bf16=maybe", "bf16: expected true or false"),
        ("optim=3", "optim: expected a section"),
        ("no_equals_sign", "not of the form key=value"),
    ],
)
def test_bad_overrides_name_the_key(override, message):
    with pytest.raises(ConfigError) as info:
        load_config(Train, None, [override])
    assert message in str(info.value)


def test_optional_fields_take_none_or_a_value():
    assert load_config(Train, None, ["storage=null"]).storage is None
    assert load_config(Train, None, ["storage=s3://b/runs"]).storage == "s3://b/runs"


def test_missing_and_malformed_files_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(Train, tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- a list\n- not a mapping\n")
    with pytest.raises(ConfigError, match="mapping at its top"):
        load_config(Train, bad)


def test_to_dict_and_flatten_give_mlflow_shaped_params():
    flat = flatten(to_dict(Train()))
    assert flat["optim.lr"] == 1e-4
    assert flat["optim.betas"] == [0.9, 0.999]
    assert flat["mode"] == "paper"


def test_an_inline_mapping_stands_for_a_config_file():
    config = load_config(Train, '{"epochs": 7, "optim": {"lr": 0.5}}', ["epochs=8"])
    assert config.epochs == 8 and config.optim.lr == 0.5


def test_an_unfrozen_encoder_with_a_head_only_schedule_is_refused_naming_both_keys():
    from vda.platform.core.config import ConfigError, build
    from vda.platform.train.config import TrainConfig

    with pytest.raises((ConfigError, ValueError)) as error:
        build(TrainConfig, {"model": {"freeze_encoder": False}, "trainable": "head"})
    assert "model.freeze_encoder" in str(error.value) and "trainable=head" in str(error.value)
    assert not build(
        TrainConfig, {"model": {"freeze_encoder": False}, "trainable": "all"}
    ).model.freeze_encoder


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("data.sources=[{name: a, path: x}, {name: a, path: y}]", "data.sources: names must"),
        ("data.sources=[{name: a, path: x, weight: 0}]", "data.sources: 'a' needs a positive"),
        ("start_timeout_s=0", "start_timeout_s must be positive"),
        ("data.clip.clip_len=64", "data.clip.clip_len 64 exceeds model.num_frames 32"),
    ],
)
def test_training_config_checks_name_the_key_at_its_own_section(override, message):
    """A section checks its own keys (data.sources in DataConfig); the top checks what spans
    two sections (a clip longer than the model's frames)."""
    from vda.platform.train.config import TrainConfig

    with pytest.raises(ConfigError) as info:
        load_config(TrainConfig, None, [override])
    assert message in str(info.value)
