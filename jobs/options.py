"""Config handling shared by the job entry points: `--config FILE` plus `key=value` overrides."""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

import yaml

from vda.platform.core.config import load_config, to_dict

T = TypeVar("T")


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="YAML config file")
    parser.add_argument(
        "overrides", nargs="*", metavar="key=value", help="config overrides, e.g. optim.lr=3e-4"
    )
    parser.add_argument(
        "--print-config", action="store_true", help="print the resolved config and exit"
    )


def resolve_config(cls: type[T], args: argparse.Namespace, flags: dict[str, Any]) -> T:
    """Defaults <- --config <- dedicated flags (when given) <- key=value overrides."""
    overrides = [
        f"{key}={_yaml_scalar(value)}" for key, value in flags.items() if value is not None
    ]
    overrides += list(args.overrides or [])
    return load_config(cls, args.config, overrides)  # ConfigError: reported by vda.jobs.cli


def _yaml_scalar(value: Any) -> str:
    return yaml.safe_dump(value, default_flow_style=True).strip().removesuffix("...").strip()


def print_config(config: Any) -> None:
    print(yaml.safe_dump(to_dict(config), sort_keys=False).rstrip())
