"""The package layout: one `vda` package from three folders, stdlib `platform` intact."""

from __future__ import annotations

import subprocess
import sys
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


def test_the_package_root_links_the_three_code_folders():
    """vda/ is the package; model/, platform/ and jobs/ stay top-level, linked into it."""
    for name in ("model", "platform", "jobs"):
        link = ROOT / "vda" / name
        assert link.is_symlink() and link.resolve() == ROOT / name
    import vda.platform

    assert list(vda.platform.__path__) == [str(ROOT / "vda" / "platform")]  # no other portion


@pytest.mark.slow
def test_the_wheel_holds_every_module_and_imports_them_all_outside_the_checkout(tmp_path):
    """The wheel (what `vda submit` ships and the image installs) has every module of the
    checkout, and each imports from a folder that is not the checkout, with only the
    dependencies' site-packages beside it (`python -S`: no editable-install hook)."""
    wheels, target = tmp_path / "wheels", tmp_path / "installed"
    build = [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(wheels)]
    subprocess.run([*build, str(ROOT)], check=True, capture_output=True, cwd=tmp_path)
    (wheel,) = wheels.glob("vda-*.whl")
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target"]
    subprocess.run([*install, str(target), str(wheel)], check=True, capture_output=True)
    checkout = {
        ("vda", *path.relative_to(ROOT).with_suffix("").parts)
        for folder in ("model", "platform", "jobs")
        for path in (ROOT / folder).rglob("*.py")
    } | {("vda", "__init__")}
    installed = {
        path.relative_to(target).with_suffix("").parts for path in (target / "vda").rglob("*.py")
    }
    assert installed == checkout
    modules = sorted(".".join(parts).removesuffix(".__init__") for parts in installed)
    site = next(Path(p) for p in sys.path if p.endswith("site-packages"))
    code = "import importlib, sys\nfor name in sys.argv[1:]: importlib.import_module(name)\n"
    code += "import vda; print(vda.__file__)"
    out = subprocess.run(
        [sys.executable, "-S", "-c", code, *modules],
        cwd=tmp_path,
        env={"PYTHONPATH": f"{target}:{site}", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert out.stdout.strip() == str(target / "vda" / "__init__.py")


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
