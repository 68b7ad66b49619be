"""Training checkpoints in storage: what they hold, reading them back, finding the newest.

Rank 0 writes each checkpoint through `ray.train.report`; every rank reads
the one it resumes from straight from storage. Kept apart from the loop so a
reader sees the resume rules in one place.
"""

from __future__ import annotations

from typing import Any

import torch

from ..storage import join
from ..weights import CHECKPOINT_FILE

# Score of checkpoints taken before any validation. Finite on purpose: Ray keeps
# reported metrics as JSON, where inf comes back as null and breaks the ranking
# of checkpoints on restore; this ranks them last among the best K instead.
NOT_VALIDATED = 1e9


def read_checkpoint_state(checkpoint) -> dict[str, Any]:
    """The state in a Ray Train checkpoint, read straight from its storage into memory.

    Not `as_directory()`: ranks on one node share its download folder, and a rank
    reading while another still writes there saw a truncated file (CI, 2026-11-22).
    """
    import io

    path = f"{checkpoint.path.rstrip('/')}/{CHECKPOINT_FILE}"
    with checkpoint.filesystem.open_input_stream(path) as stream:
        data = stream.read()
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def latest_stored(storage_path: str, name: str, settings=None):
    """The newest checkpoint folder under `<storage_path>/<name>/` that holds a readable
    state: (`ray.train.Checkpoint`, its state), or None.

    Ray Train resumes only from checkpoints its controller registered; a worker
    killed right after a report, or a trial restarted from scratch by Tune, can
    leave a newer checkpoint in storage that the controller never recorded (the
    interrupted sweep restarted its trial from step 1, 2026-11-30). Ray names
    the folders `checkpoint_<timestamp>`, so the name orders them; a folder
    whose file is missing or torn (a crash mid-upload) is skipped.
    """
    import pyarrow.fs as pafs
    import ray.train

    from ..storage import resolve

    filesystem, root = resolve(join(storage_path, name), settings)
    try:
        infos = filesystem.get_file_info(pafs.FileSelector(root, allow_not_found=True))
    except OSError:
        return None
    folders = sorted(
        (
            i.path
            for i in infos
            if i.type == pafs.FileType.Directory and i.base_name.startswith("checkpoint_")
        ),
        reverse=True,
    )
    for folder in folders:
        checkpoint = ray.train.Checkpoint(folder, filesystem=filesystem)
        try:
            state = read_checkpoint_state(checkpoint)
        except Exception:  # torn or missing: the one before it
            continue
        return checkpoint, state
    return None


def progress(state: dict[str, Any]) -> tuple[int, int]:
    return int(state["step"]), int(state["epoch"])


def resume_state(registered, storage_path: str, name: str, settings=None):
    """(checkpoint, its state) to resume from: the one Ray Train registered, or a newer one
    found in storage; every rank picks the same one. None for a fresh run.

    Each candidate is read once (a real head's state with its optimizer runs to GBs):
    the state read to prove a stored checkpoint whole is the one restored.
    """
    stored = latest_stored(storage_path, name, settings)
    if registered is None:
        return stored
    registered_state = read_checkpoint_state(registered)
    if stored is not None and progress(stored[1]) > progress(registered_state):
        return stored
    return registered, registered_state
