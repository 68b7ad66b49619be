"""The package layout: one `vda` package from three folders, stdlib `platform` intact."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from vda.jobs.cli import JOBS, build_parser, main

ROOT = Path(__file__).resolve().parents[2]


def test_stdlib_platform_is_not_shadowed_from_the_repo_root():
    code = (
        "import vda.model, vda.jobs.cli, vda.platform.core.config\n"
        "import platform\n"
        "assert platform.system(), 'empty'\n"
        "print(platform.__file__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert "/platform.py" in out.stdout  # the standard library's module
    assert not (ROOT / "platform" / "__init__.py").exists()


def test_every_code_folder_is_a_listed_package():
    """Wheels (shipped to clusters) contain only listed packages: none may be forgotten."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    mapping = {v: k for k, v in config["package-dir"].items()}
    found = set(mapping.values())  # the three mapped roots (vda.platform is a namespace)
    for top, package in mapping.items():
        for folder in [ROOT / top, *(p for p in (ROOT / top).rglob("*") if p.is_dir())]:
            if "__pycache__" in folder.parts or not any(folder.glob("*.py")):
                continue
            relative = folder.relative_to(ROOT / top).parts
            found.add(".".join((package, *relative)))
    assert found == set(config["packages"])


def test_cli_lists_every_job():
    help_text = build_parser().format_help()
    for job in JOBS:
        assert job.name in help_text


def test_console_script_is_installed():
    out = subprocess.run(
        [str(Path(sys.executable).parent / "vda"), "--help"], capture_output=True, text=True
    )
    assert out.returncode == 0 and "convert" in out.stdout


@pytest.mark.parametrize("target", ["official", "vda"])
def test_convert_job_round_trips_an_official_checkpoint(tmp_path, target):
    import torch
    from helpers import tiny_model

    source = tmp_path / "video_depth_anything_tiny.pth"
    torch.save(tiny_model(seed=11).state_dict(), source)
    out = tmp_path / f"out.{target}.pth"
    assert main(["convert", str(source), str(out), "--to", target]) == 0
    back = tmp_path / "back.pth"
    assert main(["convert", str(out), str(back), "--to", "official"]) == 0
    a, b = torch.load(source, weights_only=True), torch.load(back, weights_only=True)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
