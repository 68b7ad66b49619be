"""The bulk job's decisions as pure functions of reports and a clock: no Ray, no storage."""

from __future__ import annotations

import pytest

from vda.platform.core.config import ConfigError, build
from vda.platform.infer.activity import ActivityReport, ActorActivity
from vda.platform.infer.config import InferConfig
from vda.platform.infer.deaths import after_death
from vda.platform.infer.messages import Unit
from vda.platform.infer.stalls import StallPolicy, Watched
from vda.platform.storage import StorageError, is_missing, retrying


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_activity_steps_name_the_side_that_stopped_and_learn_the_longest_finished_pause():
    clock = Clock()
    actor = ActorActivity(clock)
    task = actor.begin("v")
    frames = task.frames(iter([1, 2]))
    clock.now += 3  # the model took 3 s before asking for the first frame
    assert next(frames) == 1
    assert task.phase == "model" and actor.longest_gap_s == 3
    clock.now += 7  # the model works on frame 1 for 7 s, then waits for frame 2
    assert next(frames) == 2
    clock.now += 50  # blocked in the model on frame 2: a pause that has not ended
    (report,) = [ActivityReport(**r) for r in actor.snapshot()]
    assert (report.key, report.phase, report.idle_s) == ("v", "model", 50)
    assert report.longest_gap_s == 7  # the unfinished pause does not count
    task.step("wait", waiting=True)
    clock.now += 400  # waiting for a segment: a pause that says nothing of speed
    task.step("stitch")
    assert actor.longest_gap_s == 50
    actor.end("v")
    assert actor.snapshot() == []


def test_unit_keys_name_videos_and_segments():
    from vda.platform.infer.messages import Unit

    video = Unit("s3://b/a/b.mp4", "a/b")
    assert video.key == "a/b" and not video.is_segment
    segment = video.with_(segment=3, first=6, stop=9, plan="p")
    assert segment.key == "a/b#3" and segment.is_segment and video.segment is None


def test_the_deadline_grows_to_four_times_the_longest_pause_seen():
    policy = StallPolicy(timeout_s=300)
    assert policy.deadline() == 300 and policy.poll_interval() == 50
    policy.learn(ActivityReport("v", "model", 1.0, longest_gap_s=60))
    assert policy.deadline() == 300  # 4 x 60 = 240 < 300
    policy.learn(ActivityReport("v", "model", 1.0, longest_gap_s=100))
    assert policy.deadline() == 400 and policy.poll_interval() == 60  # at most a minute apart
    assert StallPolicy(timeout_s=3).poll_interval() == 1.0  # never more than once a second


def test_a_task_is_stalled_when_nothing_moved_for_the_deadline():
    watched = Watched("v", last_step=0.0)
    assert watched.stalled(now=9.0, deadline=10, asked_at=None) is None
    # answered at t=9: idle for 2 s, in decode
    watched.update(ActivityReport("v", "decode", 2.0), answered_at=9.0, waiting_ok=False)
    assert watched.last_step == 7.0 and watched.phase == "decode"
    assert watched.stalled(now=16.9, deadline=10, asked_at=None) is None
    assert watched.stalled(now=17.0, deadline=10, asked_at=None) == "stalled for 10 s in decode"
    # a question unanswered for the whole deadline: the process itself is frozen
    why = watched.stalled(now=20.0, deadline=10, asked_at=10.0)
    assert why == "stalled for 13 s in decode (the actor stopped answering)"
    # an older answer never moves the last step back
    watched.update(ActivityReport("v", "decode", 30.0), answered_at=20.0, waiting_ok=False)
    assert watched.last_step == 7.0


def test_waiting_for_a_segment_is_progress_only_while_segments_are_left():
    watched = Watched("stitch:v", last_step=0.0)
    waiting = ActivityReport("stitch:v", "wait for segment 2", 30.0, waiting=True)
    watched.update(waiting, answered_at=30.0, waiting_ok=True)
    assert watched.last_step == 30.0  # its segment is still running: not stalled
    watched.update(waiting, answered_at=60.0, waiting_ok=False)  # every segment is done
    assert watched.last_step == 30.0
    assert watched.stalled(now=60.0, deadline=30, asked_at=None) is not None
    watched.update(None, answered_at=70.0, waiting_ok=True)  # not begun yet: nothing learnt
    assert watched.last_step == 30.0


def test_retrying_storage_gives_up_after_its_attempts_with_the_first_line():
    pauses: list[float] = []
    calls = []

    def denied():
        calls.append(1)
        raise StorageError("cannot read s3://b/k: access denied to s3://b/k\ndetails")

    with pytest.raises(StorageError) as caught:
        retrying(denied, "read segment 3's record", attempts=4, sleep=pauses.append)
    assert len(calls) == 4 and pauses == [0.5, 1.0, 2.0]
    assert str(caught.value) == (
        "read segment 3's record: cannot read s3://b/k: access denied to s3://b/k (4 attempts)"
    )
    answers = iter([StorageError("throttled"), "ok"])

    def blip():
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    assert retrying(blip, "x", sleep=pauses.append) == "ok"
    assert is_missing(StorageError("cannot read s3://b/k: s3://b/k does not exist"))
    assert not is_missing(StorageError("cannot read s3://b/k: access denied"))


def test_what_fits_is_counted_node_by_node():
    from vda.platform.infer.sizing import fits_on_nodes

    nodes = [{"CPU": 4.0, "GPU": 1.0}, {"CPU": 4.0, "GPU": 1.0}]
    assert fits_on_nodes(nodes, {"CPU": 6}) == 0  # the totals (8 CPUs) would say 1
    assert fits_on_nodes(nodes, {"CPU": 4, "GPU": 1}) == 2
    assert fits_on_nodes(nodes, {"CPU": 1.5}) == 4  # 2 per node, the half CPUs left over
    assert fits_on_nodes([{"CPU": 8.0}, {"CPU": 3.0}], {"CPU": 4, "GPU": 0.5}) == 0
    assert fits_on_nodes(nodes, {}) == 0


def test_the_autoscaler_is_asked_for_what_the_work_left_needs():
    from vda.platform.infer.sizing import actors_to_request

    ask = actors_to_request
    assert ask("auto", 8, queued=100, running=0, capacity=2) == 8  # max_actors bounds it
    assert ask("auto", 8, queued=3, running=2, capacity=2) == 5  # never more than the work
    assert ask("auto", 8, queued=0, running=2, capacity=8) == 2  # the tail: the busy ones
    assert ask("auto", 8, queued=0, running=0, capacity=8) == 0
    assert ask("auto", 0, queued=50, running=0, capacity=3) == 3  # unbounded: what is there
    assert ask(4, 0, queued=50, running=0, capacity=1) == 4


def test_failed_starts_back_off_and_a_membership_change_resets_it():
    from vda.platform.infer.sizing import StartBackoff

    backoff = StartBackoff(base_s=5, cap_s=300)
    assert backoff.may_start(0.0)
    delays = []
    for now in (0.0, 10.0, 30.0, 70.0, 200.0, 600.0, 1000.0, 2000.0):
        backoff.failed(now)
        delays.append(backoff.delay())
    assert delays == [5, 10, 20, 40, 80, 160, 300, 300]  # doubling, capped: never stopped
    assert not backoff.may_start(2000.0 + 299) and backoff.may_start(2000.0 + 300)
    backoff.membership_changed()  # a node joined: try it now
    assert backoff.may_start(2000.5)
    backoff.failed(3000.0)
    backoff.succeeded()
    assert backoff.may_start(3000.0)


def test_one_request_holds_every_live_jobs_share_until_it_expires():
    from vda.platform.infer.demand import DemandLedger

    ledger = DemandLedger()
    ledger.set("job-b", [{"CPU": 1.0}] * 2, expires=160.0)
    ledger.set("job-a", [{"GPU": 1.0}], expires=100.0)
    assert ledger.total() == [{"GPU": 1.0}, {"CPU": 1.0}, {"CPU": 1.0}]  # the sum, job order
    assert ledger.expire(now=99.0) == []
    assert ledger.expire(now=100.0) == ["job-a"]  # its driver stopped renewing
    assert ledger.total() == [{"CPU": 1.0}] * 2  # job-b keeps its nodes
    ledger.set("job-b", [], expires=500.0)  # asks for nothing: its share is gone
    ledger.set("job-c", [{"CPU": 1.0}], expires=500.0)
    ledger.drop("job-c")  # a job that ends drops its own share only
    assert ledger.total() == [] and ledger.shares == {}


def test_the_ratio_estimate_is_exact_for_a_full_sample_and_for_proportional_videos():
    from vda.platform.infer.estimate import ratio_estimate

    full = ratio_estimate([10, 20, 30], [1, 2, 3], population_bytes=6, population=3)
    assert (full.total, full.half_width, full.exact) == (60, 0, True)
    # frames exactly proportional to bytes (10 a byte): any sample gives the truth, no spread
    part = ratio_estimate([10, 40], [1, 4], population_bytes=100, population=30)
    assert part.total == pytest.approx(1000) and part.half_width == pytest.approx(0)


def test_the_ratio_estimate_interval_by_hand():
    from vda.platform.infer.estimate import ratio_estimate

    # y = 10, 30; x = 1, 2: ratio 40 / 3; d = 10 - 40/3, 30 - 80/3 = -10/3, 10/3
    # s_d^2 = (100/9 + 100/9) / 1 = 200/9; N = 10: var = 100 * (1 - 0.2) * (200/9) / 2
    estimate = ratio_estimate([10, 30], [1, 2], population_bytes=15, population=10)
    assert estimate.total == pytest.approx(40 / 3 * 15)
    assert estimate.half_width == pytest.approx(1.96 * (100 * 0.8 * 200 / 9 / 2) ** 0.5)
    one = ratio_estimate([10], [1], population_bytes=15, population=10)
    assert one.total == 150 and one.half_width == float("inf")  # one header: no spread known
    unsized = ratio_estimate([10, 30], [0, 0], population_bytes=0, population=10)
    assert unsized.total == pytest.approx(200)  # no sizes (a .txt list): by count


def test_a_death_is_charged_to_the_unit_that_ran_alone_and_to_no_other():
    unit, beside = Unit("s3://b/a.mp4", "a"), Unit("s3://b/b.mp4", "b")
    both = after_death(unit, {"a", "b"}, None, 2, "exit 1")
    assert both.retry == unit.with_(alone=True, uncharged=1)  # begun beside b: not charged
    assert "holding 2 units begun together" in both.line
    alone = after_death(both.retry, {"a"}, None, 2, "exit 1")
    assert alone.retry == both.retry.with_(attempt=2)  # now its own: charged
    last = after_death(alone.retry, {"a"}, None, 2, "exit 1")
    assert last.retry is None and last.attempts == 2
    assert last.reason.startswith("the actor died on each of 2 attempts at the video")
    idle = after_death(beside, set(), None, 2, "exit 1")  # never taken: uncharged
    assert idle.retry == beside.with_(uncharged=1) and "before taking it" in idle.line
    worn = beside.with_(uncharged=4)  # twice max_attempts uncharged: charged after all
    assert after_death(worn, set(), None, 2, "x").retry == worn.with_(attempt=2)


def test_a_stall_kill_is_charged_to_the_stalled_task_only():
    unit, beside = Unit("s3://b/a.mp4", "a", attempt=2), Unit("s3://b/b.mp4", "b")
    killed = ("a", "stalled for 300 s in decode")
    stalled = after_death(unit, {"a", "b"}, killed, 2, "killed")
    assert stalled.retry is None
    assert stalled.reason == "the video stalled for 300 s in decode (attempt 2 of 2)"
    other = after_death(beside, {"a", "b"}, killed, 2, "killed")
    assert other.retry == beside.with_(uncharged=1)  # not alone: the stall was not its


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("on", r"overlap must be auto, always or never, not 'on'"),
        (True, r"actors.overlap: expected a string, got True"),  # YAML's bare `on`
    ],
)
def test_an_overlap_that_is_not_auto_always_or_never_is_one_clear_error(value, message):
    with pytest.raises(ConfigError, match=message):
        build(InferConfig, {"actors": {"overlap": value}})


@pytest.mark.parametrize(
    ("outputs", "message"),
    [
        ({"preview_threads": -1}, r"outputs.preview_threads must be 0 \(by frame size\) or a"),
        ({"depth_compression": 10}, r"outputs.depth_compression must be a zlib level, 0 to 9"),
    ],
)
def test_output_options_out_of_range_are_one_clear_error(outputs, message):
    with pytest.raises(ConfigError, match=message):
        build(InferConfig, {"outputs": outputs})
