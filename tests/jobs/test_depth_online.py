"""`vda depth --online` and `vda.online()`: a file, a paced file, an HTTP stream, bad sources."""

from __future__ import annotations

import functools
import json
import os
import signal
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
from helpers import tiny_model
from videos import moving_frames, write_mp4v

import vda
from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.model.inference import OnlineDepthEngine
from vda.platform.video import open_video

FRAMES = 40


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(tiny_model(seed=41), path)
    return path


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    folder = tmp_path_factory.mktemp("clips")
    return write_mp4v(folder / "clip.mp4", moving_frames(FRAMES, 28, 42), fps=12)


@pytest.fixture(scope="module")
def expected(clip):
    """The online engine over every decoded frame, without the job around it."""
    with open_video(clip) as reader:
        frames = list(reader.frames())
    engine = OnlineDepthEngine(tiny_model(seed=41), input_size=28)
    return frames, np.stack([engine.step(frame) for frame in frames])


def read_depths(folder):
    meta = json.loads((folder / "metadata.json").read_text())
    chunks = [np.load(folder / name) for name in meta["depth_files"]]
    depth = np.concatenate([c["depth"] for c in chunks])
    index = np.concatenate([c["frame_index"] for c in chunks])
    return meta, depth, index


def test_online_job_on_a_file_gives_every_frame_and_reports_latency(
    tmp_path, checkpoint, clip, expected, capsys
):
    out = tmp_path / "out"
    code = main(
        [
            "depth",
            "--online",
            str(clip),
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(out),
            "--input-size",
            "28",
            "--depth-dtype",
            "float32",
        ]
    )
    assert code == 0
    meta, depth, index = read_depths(out / "clip")
    assert meta["mode"] == "online" and meta["metadata_version"] == 3
    assert meta["online"]["dropped"] == 0 and meta["online"]["frames"] == FRAMES
    assert index.tolist() == list(range(FRAMES))
    np.testing.assert_array_equal(depth, expected[1])
    assert (out / "clip" / "preview.mp4").stat().st_size > 0
    printed = capsys.readouterr().out
    assert f"{FRAMES} frames, 0 dropped, latency p50" in printed and "p95" in printed
    assert meta["online"]["latency_p95_ms"] >= meta["online"]["latency_p50_ms"] > 0


def test_realtime_file_writes_increasing_frames_and_counts_the_rest_as_dropped(
    tmp_path, checkpoint
):
    """Played at 400 frames/s through the CLI: every frame is either written or counted as
    dropped, the written ones are in order, and the final frame is never lost. Whether any
    are dropped depends on this machine's speed; that drops take the oldest frame is shown
    with a consumer of known speed in tests/platform/test_live_sources.py."""
    video = write_mp4v(tmp_path / "fast.mp4", moving_frames(FRAMES, 28, 42), fps=400)
    out = tmp_path / "out"
    code = main(
        [
            "depth",
            "--online",
            str(video),
            "--realtime",
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(out),
            "--input-size",
            "28",
            "--no-preview",
        ]
    )
    assert code == 0
    meta, _, index = read_depths(out / "fast")
    online = meta["online"]
    assert online["realtime"] is True and online["read"] == FRAMES
    assert len(index) + online["dropped"] == FRAMES == meta["frames"] + online["dropped"]
    assert np.all(np.diff(index) > 0) and index[-1] == FRAMES - 1


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def http_server(clip):
    handler = functools.partial(_Quiet, directory=str(clip.parent))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_python_api_over_an_http_stream(http_server, checkpoint, expected):
    """`vda.online` on an http:// URL (PyAV / FFmpeg over a real loopback server): with room
    to queue every frame none is dropped, and each depth is the engine's for that frame."""
    url = f"http://{http_server}/clip.mp4"
    stream = vda.online(url, checkpoint=str(checkpoint), input_size=28, queue_frames=FRAMES)
    results = list(stream)
    assert [r.index for r in results] == list(range(FRAMES)) and stream.dropped == 0
    frames, depths = expected
    for result, frame, depth in zip(results, frames, depths):
        np.testing.assert_array_equal(result.image, frame)
        np.testing.assert_array_equal(result.depth, depth)
    assert stream.latency.frames == FRAMES and stream.latency.fps > 0


def test_stream_credentials_stay_out_of_outputs_and_messages(
    tmp_path, http_server, checkpoint, capsys
):
    out = tmp_path / "out"
    url = f"http://viewer:s3cr3t@{http_server}/clip.mp4"
    code = main(
        [
            "depth",
            "--online",
            url,
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(out),
            "--input-size",
            "28",
            "--max-len",
            "5",
            "--no-preview",
        ]
    )
    assert code == 0
    meta = (out / "127-0-0-1_clip" / "metadata.json").read_text()
    assert "s3cr3t" not in meta and "viewer:" not in meta
    assert json.loads(meta)["online"]["source"] == f"http://***@{http_server}/clip.mp4"
    captured = capsys.readouterr()
    assert "s3cr3t" not in captured.out + captured.err  # tqdm's line is on stderr
    assert [p.name for p in out.iterdir()] == ["127-0-0-1_clip"]
    missing = f"http://viewer:s3cr3t@{http_server}/missing.mp4"
    assert main(["depth", "--online", missing, "--checkpoint", str(checkpoint)]) == 2
    error = capsys.readouterr().err
    assert "s3cr3t" not in error and "missing.mp4" in error


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--online", "7"], "camera 7 cannot be opened"),
        (["--online", "nothing.mp4"], "does not exist"),
        (["--online", "0", "--engine", "onnx"], "without --engine onnx"),
        (["--online", "0", "extra.mp4"], "--online takes one source"),
        (["--online", "0", "--compile", "--no-cache"], "without --no-cache, --compile"),
        (["--online", "0", "--serve-preview", "host:web"], "takes [HOST:]PORT"),
        (["--online", "rtsp://u:pw@cam.invalid", "--queue-frames", "0"], "at least 1"),
        (["--online", "ftp://u:pw@host/a.mp4"], "unsupported source 'ftp://***@host/a.mp4'"),
        ([], "name at least one video"),
    ],
)
def test_bad_online_sources_and_flags_are_one_line_errors(arguments, message, checkpoint, capsys):
    assert main(["depth", *arguments, "--checkpoint", str(checkpoint)]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error


def test_ctrl_c_ends_a_live_run_with_its_outputs_closed(tmp_path, checkpoint, monkeypatch):
    """A live source has no end: the first Ctrl-C stops after the current frame, and the
    folder is complete (depth arrays, preview, metadata) for the frames done."""
    video = write_mp4v(tmp_path / "long.mp4", moving_frames(240, 28, 42), fps=12)  # 20 s
    step = OnlineDepthEngine.step
    calls = []

    def step_then_interrupt(self, frame):  # Ctrl-C while the third frame is computed
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGINT)
        return step(self, frame)

    monkeypatch.setattr(OnlineDepthEngine, "step", step_then_interrupt)
    # as in a terminal, whatever this test runs under (a background job ignores SIGINT)
    before = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        code = main(
            [
                "depth",
                "--online",
                str(video),
                "--realtime",
                "--checkpoint",
                str(checkpoint),
                "-o",
                str(tmp_path / "out"),
                "--input-size",
                "28",
            ]
        )
        restored = signal.getsignal(signal.SIGINT)
    finally:
        signal.signal(signal.SIGINT, before)
    assert code == 0 and restored is signal.default_int_handler  # the job's handler is gone
    meta, depth, index = read_depths(tmp_path / "out" / "long")
    assert meta["frames"] == len(depth) == 3 and index[-1] < 239
    assert (tmp_path / "out" / "long" / "preview.mp4").stat().st_size > 0


def test_a_taken_preview_port_is_a_one_line_error(clip, tmp_path, checkpoint, capsys):
    from vda.platform.online import MjpegPreview

    with MjpegPreview(port=0) as taken:
        code = main(
            [
                "depth",
                "--online",
                str(clip),
                "-o",
                str(tmp_path / "out"),
                "--checkpoint",
                str(checkpoint),
                "--serve-preview",
                f"127.0.0.1:{taken.port}",
            ]
        )
    assert code == 2
    error = capsys.readouterr().err
    assert "cannot serve the preview" in error and "Traceback" not in error
    assert not (tmp_path / "out").exists()  # nothing written before the preview failed
