"""The driver at archive scale: pending work materialised only as it is dispatched, rows
streamed to part files and not kept, the manifest compacted from them (a null model: the
actor commits each video at once, everything else is real)."""

from __future__ import annotations

import io

import pyarrow.parquet as pq
import pytest
from helpers import tiny_model

from vda.model import save_checkpoint
from vda.platform.core.config import build
from vda.platform.infer.config import InferConfig
from vda.platform.infer.job import run_infer
from vda.platform.infer.manifest import PARTS
from vda.platform.infer.plan import plan_job
from vda.platform.infer.scheduler import InferScheduler
from vda.platform.storage import list_files, read_bytes

pytestmark = pytest.mark.integration

VIDEOS = 120


@pytest.fixture
def null_job(tmp_path):
    for i in range(VIDEOS):
        shelf = tmp_path / "videos" / f"shelf{i % 3}"
        shelf.mkdir(parents=True, exist_ok=True)
        # never opened (the model is null); sizes vary as an archive's do
        (shelf / f"clip{i:04d}.mp4").write_bytes(b"\0" * (1000 + i))
    save_checkpoint(tiny_model(seed=3), tmp_path / "tiny.ckpt")
    return {
        "input": str(tmp_path / "videos"),
        "output": str(tmp_path / "depth"),
        "checkpoint": str(tmp_path / "tiny.ckpt"),
        "actors": {"num_actors": 1, "cpus_per_actor": 1},
        "fault": {"null_model": True},
        "manifest": {"merge_rows": 25},
        "mlflow": {"tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"},
    }


def test_a_video_is_held_by_the_scheduler_only_while_it_is_in_flight(ray_cluster, null_job):
    null_job["actors"]["batch_s"] = 0  # one video a call: the bound below is exact
    config = build(InferConfig, null_job)
    plan = plan_job(config)
    held, rows = [], []

    def on_row(row) -> None:
        held.append(len(scheduler.videos))
        rows.append(row.status)

    scheduler = InferScheduler(config, plan.checkpoint_sha256, on_row, progress=lambda _: None)
    scheduler.run(plan.todo)
    assert rows == ["done"] * VIDEOS
    # one actor, two units in flight: the one just finished is forgotten before its row
    # leaves, so at most the other one is held
    assert max(held) <= config.actors.units_in_flight - 1 and not scheduler.videos


def test_rows_reach_the_manifest_through_part_files_and_a_rerun_merges_them(ray_cluster, null_job):
    config = build(InferConfig, null_job)
    first = run_infer(config, progress=lambda _: None)
    assert first.count("done") == VIDEOS and first.count("skipped") == 0
    assert not list_files(f"{config.output}/{PARTS}")  # merged, then dropped
    table = pq.read_table(io.BytesIO(read_bytes(first.manifest)))
    assert table.num_rows == VIDEOS and table.equals(first.table)
    ids = table["video_id"].to_pylist()
    assert len(set(ids)) == VIDEOS  # one row each, in the order the parts were merged
    assert [r.video_id for r in first.rows] == sorted(ids)  # rows: by video id
    again = run_infer(config, progress=lambda _: None)  # every row from the last manifest
    assert again.count("skipped") == VIDEOS and again.count("done") == 0
    rows = again.table.drop_columns(["processed"])
    assert rows.equals(first.table.drop_columns(["processed"]))


def test_short_videos_travel_in_batches_and_a_poison_or_raising_one_in_a_batch_fails_alone(
    ray_cluster, null_job
):
    """A poison video kills its actor; a raising one fails its whole call (an error outside
    any video's guard) and the actor lives. Either way the rest of its batch is done."""
    from vda.platform.infer.rows import read_row

    poison = "shelf1/clip0061"  # the middle of the queue: the first calls are measured
    raising = "shelf2/clip0089"  # in another batch than the poison one
    null_job["actors"].update({"max_attempts": 2, "batch_max": 16})
    null_job["fault"].update({"crash_videos": [poison], "raise_videos": [raising]})
    config = build(InferConfig, null_job)
    lines: list[str] = []
    result = run_infer(config, progress=lines.append)
    rows = {row.video_id: row for row in result.rows}
    assert result.count("done") == VIDEOS - 2 and rows[poison].status == "failed"
    assert rows[poison].attempts == 2
    assert "the actor died on each of 2 attempts at the video" in rows[poison].error
    # its batch's call failed, so each of that batch ran again alone, uncharged; alone, the
    # call is its own: one attempt, the error's own line (not Ray's traceback), on record
    assert rows[raising].status == "failed" and rows[raising].attempts == 1
    why = f"RuntimeError: fault injection: {raising} raises outside its guard"
    assert rows[raising].error == why == read_row(config.output, raising).error
    said = [line for line in lines if f"videos failed ({why}): each runs again alone" in line]
    assert said and "a call of 1 " not in said[0]  # it failed in a batch first
    # the others of their batches were retried alone and uncharged: each done at attempt 1
    assert all(row.attempts == 1 for key, row in rows.items() if key not in (poison, raising))
    said = [line for line in lines if f" {poison}: its actor died holding" in line]
    assert said and "units begun together" in said[0] and "holding 1 " not in said[0]
    # one video a call would be 120 calls and more; batches of 16, and the dead batch's
    # videos alone, are about 30
    assert result.actor_calls < VIDEOS // 2


def test_an_error_outside_a_video_s_own_guard_fails_that_video_not_its_batch(
    ray_cluster, null_job, monkeypatch
):
    """The actor's own code, called in this process: the staging folder of the second video
    of a batch cannot be made (a full /tmp); the first and third are committed."""
    from vda.platform.core.config import to_dict
    from vda.platform.infer import worker
    from vda.platform.infer.messages import Finished, Unit
    from vda.platform.infer.rows import read_row

    real_commit = worker.OutputCommit

    def staging(output, video_id, *rest):
        if video_id == "b":
            raise OSError(28, "No space left on device", "/tmp/vda-infer-x")
        return real_commit(output, video_id, *rest)

    monkeypatch.setattr(worker, "OutputCommit", staging)
    config = build(InferConfig, null_job)
    actor = worker.VideoDepthWorker(to_dict(config), "0" * 64)
    actor.model = {"size": "tiny", "metric": False, "sha256": "0" * 64, "precision": "fp32"}
    batch = [Unit(f"{config.input}/{name}.mp4", name, bytes=1000) for name in "abc"]
    answers = actor.process(batch)
    assert [a.result.row.status for a in answers if isinstance(a.result, Finished)] == [
        "done",
        "failed",
        "done",
    ]
    failed = answers[1].result.row
    assert failed.error == "OSError: [Errno 28] No space left on device: '/tmp/vda-infer-x'"
    assert failed.attempts == 1 and all(a.seconds >= 0 for a in answers)
    durable = read_row(config.output, "b")  # the failure is on record for a rerun
    assert durable is not None and durable.status == "failed" and durable.error == failed.error
    assert read_row(config.output, "a").status == "done" == read_row(config.output, "c").status
