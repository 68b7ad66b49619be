"""The training job's test hook: one worker dies once, hard, at a given global step.

`os._exit` and not an exception: a crashed process is what a real fault looks
like to Ray Train (no clean-up, no report). A marker in storage makes it
happen once, so the restarted workers train on.
"""

from __future__ import annotations

import os

from ..storage import exists, join, write_bytes
from .config import TrainConfig


def maybe_fail(config: TrainConfig, rank: int, step: int) -> None:
    fault = config.fault
    if fault.fail_at_step is None or step != fault.fail_at_step or rank != fault.fail_rank:
        return
    marker = join(config.storage_path, config.name, ".fault_injected")
    if exists(marker, config.s3):
        return
    write_bytes(marker, b"1", config.s3)
    print(f"fault injection: rank {rank} exits at step {step}", flush=True)
    os._exit(1)
