"""The first step of every submitted job: can this Python run vda at all?

A cluster whose Ray was started outside the project's environment (or a node
image without its packages) runs the job with a Python that lacks torch or
timm, and the job would die with a ModuleNotFoundError traceback deep in its
log. This checks the main packages first, with the standard library only,
and ends with one line naming what is missing and the two usual fixes.

    python -m vda.jobs.preflight && python -m vda.jobs.cli <job> ...
"""

from __future__ import annotations

import importlib.util
import sys

# import name -> distribution name, for the message
REQUIRED = {
    "torch": "torch",
    "torchvision": "torchvision",
    "timm": "timm",
    "numpy": "numpy",
    "yaml": "pyyaml",
    "ray": "ray",
    "pyarrow": "pyarrow",
    "cv2": "opencv-python-headless",
    "av": "av",
    "mlflow": "mlflow",
    "boto3": "boto3",
}


def missing_packages() -> list[str]:
    missing = []
    for module, distribution in REQUIRED.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(distribution)
    return missing


def main() -> int:
    missing = missing_packages()
    if not missing:
        return 0
    print(
        f"vda: the cluster's Python ({sys.executable}) cannot import {', '.join(missing)}: "
        "start Ray from the project's environment (`.venv/bin/ray start ...`, so jobs run "
        "with its Python) or run the cluster on the project's image (Dockerfile) or with a "
        "runtime_env that installs them",
        file=sys.stderr,
    )
    return 3


if __name__ == "__main__":
    sys.exit(main())
