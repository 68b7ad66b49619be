"""Joining a cluster has a deadline and ends in one line: a closed port, a head that wants a
token, a wrong token (real `ray start --head` with token authentication on)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest
from clusters import project_env
from helpers import free_port, tiny_model
from videos import moving_frames, write_mp4v

from vda.model import save_checkpoint

pytestmark = [pytest.mark.integration, pytest.mark.slow]


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("connect")
    (root / "videos").mkdir()
    write_mp4v(root / "videos" / "v.mp4", moving_frames(4, 28, 42, seed=1), fps=10)
    save_checkpoint(tiny_model(seed=2), root / "tiny.ckpt")
    return [
        sys.executable,
        "-m",
        "vda.jobs.cli",
        "infer",
        "--input",
        str(root / "videos"),
        "--output",
        str(root / "out"),
        "--checkpoint",
        str(root / "tiny.ckpt"),
        "input_size=28",
        f"mlflow.tracking_uri=sqlite:///{root}/mlflow.db",
    ]


def _run(command, env) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120)
    return done, time.monotonic() - start


def _stopped_line(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 2, (done.stdout[-2000:], done.stderr[-2000:])
    lines = [line for line in done.stderr.splitlines() if line.startswith("vda infer:")]
    assert len(lines) == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    return lines[0]


def test_an_address_where_nothing_listens_is_one_line_within_the_deadline(job, tmp_path):
    address = f"127.0.0.1:{free_port()}"
    env = project_env(RAY_ADDRESS=address, VDA_CONNECT_TIMEOUT_S="5", HOME=str(tmp_path))
    done, seconds = _run(job, env)
    line = _stopped_line(done)
    assert "nothing answers at the Ray address" in line and address in line
    assert seconds < 60  # start-up and the plan; Ray alone would retry for minutes


def test_a_head_that_wants_a_token_says_so_and_where_the_token_goes(job, token_cluster, tmp_path):
    _, token, address = token_cluster
    env = project_env(RAY_ADDRESS=address, HOME=str(tmp_path), RAY_AUTH_MODE="disabled")
    done, _ = _run(job, env)
    line = _stopped_line(done)
    assert "wants a token" in line and "RAY_AUTH_TOKEN_PATH" in line and address in line
    wrong = tmp_path / "wrong_token"
    wrong.write_text("0" * 64)
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(wrong))
    line = _stopped_line(_run(job, env)[0])
    assert "rejected the token" in line and str(wrong) in line
    env["RAY_AUTH_TOKEN_PATH"] = str(token)  # the right one: the job runs
    done, _ = _run(job, env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "1 done, 0 failed" in done.stdout
