"""A cluster whose Python lacks the project's packages: one line naming them, before any work."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest
from clusters import head_log, project_env, start_head, stop, wait_for_port

from vda.jobs.cli import main
from vda.platform.cluster.submit import entrypoint_for


@pytest.fixture(scope="module")
def python_without_av(tmp_path_factory) -> Path:
    """A real venv holding every package of the project's but PyAV (links to the same files)."""
    root = tmp_path_factory.mktemp("no-av") / "venv"
    subprocess.run([sys._base_executable, "-m", "venv", "--without-pip", str(root)], check=True)
    source = Path(sysconfig.get_paths()["purelib"])
    target = next((root / "lib").glob("python3*")) / "site-packages"
    for entry in source.iterdir():
        if entry.name == "av" or entry.name.startswith(("av-", "av.libs")):
            continue
        (target / entry.name).symlink_to(entry)
    return root / "bin" / "python"


def test_preflight_names_the_missing_package_and_the_fixes(python_without_av):
    bare = subprocess.run(
        [str(python_without_av), "-m", "vda.jobs.preflight"], capture_output=True, text=True
    )
    assert bare.returncode == 3
    (line,) = bare.stderr.strip().splitlines()
    assert "cannot import av:" in line and str(python_without_av) in line
    assert "start Ray from the project's environment" in line and "image" in line
    ok = subprocess.run([sys.executable, "-m", "vda.jobs.preflight"], capture_output=True)
    assert ok.returncode == 0 and not ok.stderr


def test_every_submitted_job_runs_the_preflight_first():
    command = entrypoint_for("infer", ["--input", "s3://a b/"])
    assert command == (
        "python -m vda.jobs.preflight && python -m vda.jobs.cli infer --input 's3://a b/'"
    )


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.long  # make test: the preflight run by that Python, and the entrypoint that runs it
def test_a_job_submitted_to_a_head_started_without_pyav_fails_with_that_line(
    python_without_av, tmp_path, capsys
):
    ray_dir = os.path.dirname(str(python_without_av))
    env = project_env(RAY_AUTH_MODE="disabled")
    env["PATH"] = ray_dir + os.pathsep + env["PATH"]  # `python` on the head is that venv's
    temp_dir = tempfile.mkdtemp(prefix="raynoav", dir="/tmp")
    head, _, dashboard = start_head(
        env, temp_dir, "26000-26999", python=str(python_without_av), num_cpus=1
    )
    try:
        wait_for_port(dashboard, head, timeout=90, log=head_log(temp_dir))
        code = main(
            [
                "submit",
                "--address",
                f"http://127.0.0.1:{dashboard}",
                "infer",
                "--input",
                str(tmp_path),
                "--output",
                str(tmp_path / "out"),
                "--checkpoint",
                "x.pth",
            ]
        )
        printed = capsys.readouterr().out
        assert code != 0 and "FAILED" in printed
        assert "cannot import av:" in printed and "ModuleNotFoundError" not in printed
    finally:
        stop([head])
