"""Costs per video as slopes: one measurement per size, each in a fresh interpreter.

What every process pays once (Python, torch, Ray, a checkpoint) cancels out
between two sizes, and the difference divided by the difference in videos is
the cost of one more video. Peak RSS is each child's own high-water mark
(`ru_maxrss`), which a measurement in the parent could not separate.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys


def slope(runs: list[dict]) -> dict:
    """Bytes of peak RSS and microseconds per video between the smaller and the larger run
    (each a dict with videos, seconds and peak_rss_mb)."""
    small, large = runs
    count = large["videos"] - small["videos"]
    return {
        "runs": runs,
        "bytes_per_video": (large["peak_rss_mb"] - small["peak_rss_mb"]) * 2**20 / count,
        "us_per_video": (large["seconds"] - small["seconds"]) * 1e6 / count,
    }


def in_child(module: str, args: list[str], what: str) -> dict:
    """Run `measure()` of `vda.platform.bench.<module>` in a fresh interpreter with `args`
    as its argv; its report is the last line it prints (JSON)."""
    code = f"from vda.platform.bench.{module} import measure; measure()"
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"{what} failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.splitlines()[-1])


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
