"""Quiet by default: a job prints its own lines, the frameworks' go to a log file, $HOME stays
untouched (Ray's token included)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import tiny_model
from videos import moving_frames, write_mp4v

from vda.model import save_checkpoint

pytestmark = pytest.mark.integration  # starts a local Ray of its own

FRAMEWORK_NOISE = ("WARNING", "INFO", "(raylet)", "(pid=", "Warning:", "mlflow", "alembic")


def test_a_bulk_job_prints_only_its_own_lines_and_writes_nothing_home(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), (work / "videos").mkdir(parents=True)
    write_mp4v(work / "videos" / "clip.mp4", moving_frames(12, 28, 42, seed=3))
    save_checkpoint(tiny_model(seed=3), work / "tiny.ckpt")
    env = {
        key: value for key, value in os.environ.items()
        if not key.startswith(("RAY_", "VDA_", "MLFLOW_"))
    }  # fmt: skip
    temp = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))  # short: Ray's socket paths live here
    env.update(HOME=str(home), TMPDIR=str(temp), RAY_USAGE_STATS_ENABLED="0")
    command = [
        str(Path(sys.executable).parent / "vda"), "infer", "--input", "videos",
        "--output", "depth", "--checkpoint", "tiny.ckpt", "input_size=28",
        "actors.num_actors=1", "mlflow.experiment=quiet",
    ]  # fmt: skip
    out = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True, timeout=600)
    printed = out.stdout + out.stderr
    assert out.returncode == 0, printed[-3000:]
    lines = [line for line in printed.splitlines() if line.strip()]
    assert lines and all(line.startswith("vda infer") for line in lines), lines
    assert not [line for line in lines if any(noise in line for noise in FRAMEWORK_NOISE)]
    assert not any(home.iterdir()), sorted(p.name for p in home.rglob("*"))  # no ~/.ray token
    tokens = list(temp.glob("vda-*/session-*/ray_auth_token"))
    assert len(tokens) == 1 and oct(tokens[0].stat().st_mode & 0o777) == "0o600"
    shutil.rmtree(temp, ignore_errors=True)
