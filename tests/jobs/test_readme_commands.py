"""README commands that run here in seconds, run exactly as written (from the repo root).

The others are covered elsewhere: `make demo` runs prepare, train, infer and eval on its
own data; test_prepare_pipeline runs `vda prepare --layout synthetic` (fewer sequences); `vda depth` / `vda infer` with released names run against a loopback Hub
(test_weights_hub, test_quiet); the online commands on a file and an http:// stream
(test_depth_online; no camera or RTSP server here). tests/code/test_docs.py checks that
every flag and key the README names exists.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from vda.jobs.cli import main

ROOT = Path(__file__).resolve().parents[2]


def readme_command(prefix: str) -> list[str]:
    """The README's command line that starts with `prefix`, comment stripped, as argv."""
    for line in (ROOT / "README.md").read_text().splitlines():
        if line.startswith(prefix):
            return shlex.split(re.sub(r"\s+#.*$", "", line))[1:]  # without the `vda`
    raise AssertionError(f"README has no command starting with {prefix!r}")


def test_sweep_check_validates_the_experiment_without_ray(monkeypatch, capsys):
    monkeypatch.chdir(ROOT)
    assert main(readme_command("vda tune --config experiments/sweep.yaml --check")) == 0
    printed = capsys.readouterr().out
    assert "search space OK" in printed and "loss.tgm_weight: grid" in printed


@pytest.mark.parametrize("prefix", ["vda depth --online 0", "vda depth --online rtsp://"])
def test_online_commands_name_sources_that_need_hardware_or_a_server(prefix):
    """Not runnable here (no camera, no RTSP server): their flags parse, nothing more."""
    from vda.jobs.cli import build_parser

    args = build_parser().parse_args(readme_command(prefix))
    assert args.online and args.job == "depth"
