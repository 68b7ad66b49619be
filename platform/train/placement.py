"""Tune bookkeeping the training loop does: where its worker group's placement group is.

A Ray Train V2 run inside a Tune trial can leave its worker placement group
reserved after the trial ends; rank 0 records the group's id next to the
trial's checkpoints so the sweep driver can remove it
(`vda.platform.tune.trial.WorkerGroupReaper`).
"""

from __future__ import annotations

from ..storage import S3Settings, join, write_bytes

PLACEMENT_GROUP_FILE = ".worker_placement_group"


def record_placement_group(storage_path: str, name: str, rank: int, settings: S3Settings) -> None:
    import ray.util

    group = ray.util.get_current_placement_group()
    if rank == 0 and group is not None:
        path = join(storage_path, name, PLACEMENT_GROUP_FILE)
        write_bytes(path, group.id.hex().encode(), settings)
