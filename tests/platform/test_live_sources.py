"""What a live source shows of itself (names, redaction) and how it ends."""

from __future__ import annotations

import time

import numpy as np
import pytest
from videos import moving_frames, write_mp4v

from vda.platform.video import VideoDecodeError
from vda.platform.video.live import LiveSource, redacted, source_kind, source_name


@pytest.mark.parametrize(
    ("source", "shown"),
    [
        ("rtsp://admin:secret@192.168.1.10", "rtsp://***@192.168.1.10"),
        ("rtsp://admin:p@ss@cam:554/live", "rtsp://***@cam:554/live"),  # '@' in a password
        ("http://cam/video.mjpg?user=a&password=b", "http://cam/video.mjpg?***"),
        ("https://cam.example/stream.m3u8", "https://cam.example/stream.m3u8"),
        ("clips/a@b.mp4", "clips/a@b.mp4"),  # a file name is not a URL
    ],
)
def test_credentials_and_queries_are_redacted(source, shown):
    assert redacted(source) == shown


@pytest.mark.parametrize(
    ("source", "name"),
    [
        ("rtsp://admin:secret@192.168.1.10:554", "192-168-1-10"),  # no path: the host alone
        ("rtsp://admin:p@ss@cam/live/main.sdp?token=x", "cam_main"),
        ("http://127.0.0.1:8080/../../etc/passwd", "127-0-0-1_passwd"),  # never a path
        ("3", "camera3"),
        ("videos/walk.mp4", "walk"),
    ],
)
def test_output_folder_names_hold_no_credentials_and_no_path(source, name):
    assert source_name(source) == name


def test_unknown_schemes_are_refused_without_their_credentials():
    with pytest.raises(VideoDecodeError, match=r"unsupported source 'gopher://\*\*\*@h/x'"):
        source_kind("gopher://user:pw@h/x")


def test_a_source_failing_after_frames_has_ended_and_before_any_is_an_error(tmp_path):
    """A dropped stream keeps the frames it gave (`ended_by` says why, redacted); one that
    fails before its first frame is an error."""
    video = write_mp4v(tmp_path / "clip.mp4", moving_frames(10, 28, 42))
    url = "rtsp://user:pw@cam/live"

    def failing_after(count):
        def frames():
            yield from moving_frames(count, 28, 42)
            raise VideoDecodeError(f"video {url!r} is corrupt after {count} frames: EOF")

        return frames

    with LiveSource(str(video), realtime=False) as source:
        source._source, source.display = url, redacted(url)  # as if this file were the stream
        source._reader.frames = failing_after(3)
        assert [frame.index for frame in source] == [0, 1, 2]
        assert source.ended_by == "video 'rtsp://***@cam/live' is corrupt after 3 frames: EOF"
    with LiveSource(str(video), realtime=False) as source:
        source._source, source.display = url, redacted(url)
        source._reader.frames = failing_after(0)
        with pytest.raises(VideoDecodeError, match=r"rtsp://\*\*\*@cam/live") as raised:
            list(source)
        assert "pw" not in str(raised.value)


def test_a_slow_consumer_of_a_realtime_file_loses_the_oldest_frames_not_the_newest(tmp_path):
    """40 frames played at 400 frames/s arrive in 0.1 s; a consumer taking 30 ms a frame
    keeps up with one in twelve. The rest are dropped oldest first: what it gets is
    increasing, ends with the final frame, and with the drops accounts for every frame."""
    frames = 40
    video = write_mp4v(tmp_path / "fast.mp4", moving_frames(frames, 28, 42), fps=400)
    seen = []
    with LiveSource(str(video), realtime=True, queue_frames=1) as source:
        for frame in source:
            seen.append(frame.index)
            time.sleep(0.03)
        assert source.read == frames
        assert len(seen) + source.dropped == frames
    assert source.dropped >= frames // 2
    assert np.all(np.diff(seen) > 0) and seen[-1] == frames - 1
