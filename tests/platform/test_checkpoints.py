"""Finding the checkpoint to resume from in storage, whatever Ray Train's controller recorded."""

from __future__ import annotations

import torch

from vda.platform.train.checkpoints import latest_stored, read_checkpoint_state, resume_state
from vda.platform.weights import CHECKPOINT_FILE


def resume_point(registered, storage_path, name):
    found = resume_state(registered, storage_path, name)
    return found[0] if found else None


def _write(folder, step, epoch=0, torn=False):
    folder.mkdir(parents=True)
    path = folder / CHECKPOINT_FILE
    torch.save({"step": step, "epoch": epoch, "model": {"w": torch.ones(3) * step}}, path)
    if torn:  # a crash mid-upload
        path.write_bytes(path.read_bytes()[:20])


def test_the_newest_readable_checkpoint_wins_and_a_torn_one_is_skipped(tmp_path):
    run = tmp_path / "runs" / "job"
    _write(run / "checkpoint_2026-12-01_10-00-00.000001", step=4)
    _write(run / "checkpoint_2026-12-01_10-05-00.000001", step=8, epoch=1)
    _write(run / "checkpoint_2026-12-01_10-09-00.000001", step=10, torn=True)
    (run / "not_a_checkpoint").mkdir()
    found, state = latest_stored(str(tmp_path / "runs"), "job")
    assert read_checkpoint_state(found)["step"] == state["step"] == 8
    assert latest_stored(str(tmp_path / "runs"), "no-such-job") is None


def test_a_registered_checkpoint_older_than_storage_s_newest_is_passed_over(tmp_path):
    run = tmp_path / "runs" / "job"
    _write(run / "checkpoint_2026-12-01_10-00-00.000001", step=4)
    _write(run / "checkpoint_2026-12-01_10-05-00.000001", step=8, epoch=1)
    registered, _ = latest_stored(str(tmp_path / "runs"), "job")
    older = type(registered)(str(run / "checkpoint_2026-12-01_10-00-00.000001"))
    chosen = resume_point(older, str(tmp_path / "runs"), "job")
    assert read_checkpoint_state(chosen)["step"] == 8
    assert read_checkpoint_state(resume_point(None, str(tmp_path / "runs"), "job"))["step"] == 8
    assert resume_point(None, str(tmp_path / "empty"), "job") is None
