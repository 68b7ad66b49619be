"""Progress at archive scale: status lines on a clock, per-item lines only for small jobs."""

from __future__ import annotations

from vda.platform.core.progress import JobProgress, duration


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _run(total: int, seconds_each: float, **options) -> list[str]:
    lines: list[str] = []
    clock = Clock()
    progress = JobProgress(total, "vda infer", lines.append, every_s=30.0, clock=clock, **options)
    for index in range(total):
        clock.now += seconds_each
        progress.item(f"clip{index}: 16 frames")
        progress.finished(ok=index % 50 != 7, frames=16)
        progress.tick()
    progress.final()
    return lines


def test_a_300_video_job_prints_status_lines_on_a_clock_not_a_line_per_video():
    lines = _run(300, 0.5)  # 150 s of work: a status line every 30 s (the last one at the end)
    assert len(lines) == 5 <= 40
    assert not any("clip" in line for line in lines)
    assert lines[0] == (
        "vda infer: [60/300] 58 done, 2 failed, 240 to go; 30.9 frames/s; ETA 2 min"
    )  # 58 * 16 frames in 30 s; 30 s for 60 videos -> 240 take 120 s
    assert lines[-1].startswith("vda infer: [300/300] 294 done, 6 failed, 0 to go;")
    assert lines[-1].endswith("ETA -")


def test_small_or_verbose_jobs_print_every_video_and_a_status_line_after_each():
    small = _run(20, 0.5)
    assert sum("clip" in line for line in small) == 20
    assert sum("to go;" in line for line in small) == 20  # one per video, none repeated
    verbose = _run(300, 0.5, verbose=True)
    assert sum("clip" in line for line in verbose) == 300


def test_durations_read_as_a_person_reads_them():
    assert [duration(s) for s in (45, 89.4, 720, 5399, 12600)] == [
        "45 s",
        "89 s",
        "12 min",
        "90 min",
        "3.5 h",
    ]


def test_a_job_without_frames_reports_no_frame_rate():
    lines: list[str] = []
    progress = JobProgress(3, "vda eval", lines.append, clock=Clock(), unit="sequences")
    for _ in range(3):
        progress.finished(ok=True)
    progress.final()
    assert lines[-1] == "vda eval: [3/3] 3 done, 0 failed, 0 to go; ETA -"
