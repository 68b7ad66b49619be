"""A bulk job as a new user runs it: released weights by name, its own lines only on the
terminal (the frameworks' go to a log file), $HOME untouched (Ray's token included)."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch
from helpers import tiny_model
from hub_server import HubServer
from videos import moving_frames, write_mp4v

from vda.model.checkpoint import official_state_dict
from vda.platform.weights.hub import RELEASED

pytestmark = pytest.mark.integration  # starts a local Ray of its own

FRAMEWORK_NOISE = ("WARNING", "INFO", "(raylet)", "(pid=", "Warning:", "mlflow", "alembic")


def test_a_bulk_job_by_weight_name_prints_only_its_own_lines_and_writes_nothing_home(tmp_path):
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir(), (work / "videos").mkdir(parents=True)
    write_mp4v(work / "videos" / "clip.mp4", moving_frames(12, 28, 42, seed=3))
    release = RELEASED["vitl"]  # the official file layout and name, a tiny network inside
    weights = io.BytesIO()
    torch.save(official_state_dict(tiny_model(seed=3)), weights)
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("RAY_", "VDA_", "MLFLOW_"))
    }
    temp = Path(tempfile.mkdtemp(prefix="q", dir="/tmp"))  # short: Ray's socket paths live here
    env.update(HOME=str(home), TMPDIR=str(temp), RAY_USAGE_STATS_ENABLED="0")
    env.update(HF_HOME=str(tmp_path / "hf"))  # where a cluster node's cache would be
    command = [
        str(Path(sys.executable).parent / "vda"),
        "infer",
        "--input",
        "videos",
        "--output",
        "depth",
        "--checkpoint",
        "vitl",
        "input_size=28",
        "actors.num_actors=1",
        "mlflow.experiment=quiet",
    ]
    with HubServer() as hub:
        hub.files[(release.repo_id, release.filename)] = weights.getvalue()
        env["HF_ENDPOINT"] = hub.url
        out = subprocess.run(
            command, cwd=work, env=env, capture_output=True, text=True, timeout=600
        )
    printed = out.stdout + out.stderr
    assert out.returncode == 0, printed[-3000:]
    lines = [line for line in printed.splitlines() if line.strip()]
    assert lines and all(line.startswith("vda infer") for line in lines), lines
    assert not [line for line in lines if any(noise in line for noise in FRAMEWORK_NOISE)]
    assert not any(home.iterdir()), sorted(p.name for p in home.rglob("*"))  # no ~/.ray token
    # the license is said before the work; the driver only asked for the file's hash, the
    # actor fetched it into its node's cache; the outputs name what ran
    assert "license CC-BY-NC-4.0: non-commercial use only" in lines[1]
    assert hub.downloads() == 1, hub.requests
    assert list((tmp_path / "hf").rglob(release.filename))
    meta = json.loads((work / "depth" / "clip" / "metadata.json").read_text())
    assert meta["checkpoint"] == "vitl" and meta["checkpoint_license"] == "CC-BY-NC-4.0"
    assert meta["checkpoint_source"] == f"hf://{release.repo_id}/{release.filename}"
    tokens = list(temp.glob("vda-*/session-*/ray_auth_token"))
    assert len(tokens) == 1 and oct(tokens[0].stat().st_mode & 0o777) == "0o600"
    shutil.rmtree(temp, ignore_errors=True)
