"""Video decoding and depth writers on real encoded files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from videos import moving_frames, write_h264, write_mp4v

from vda.platform.video import (
    DecodeOptions,
    DepthOutputs,
    OutputOptions,
    VideoDecodeError,
    open_video,
)
from vda.platform.video.decode import output_size


def test_mp4v_round_trip_frames_size_and_fps(tmp_path):
    frames = moving_frames(15, 36, 50)
    path = write_mp4v(tmp_path / "a.mp4", frames, fps=12)
    with open_video(path) as reader:
        decoded = list(reader.frames())
        assert reader.info.fps == pytest.approx(12)
        assert (reader.info.height, reader.info.width) == (36, 50)
    assert len(decoded) == 15
    assert decoded[0].shape == (36, 50, 3) and decoded[0].dtype == np.uint8
    assert np.abs(decoded[5].astype(int) - frames[5]).mean() < 12  # lossy codec, same picture


def test_odd_size_one_frame_and_a_file_object(tmp_path):
    frame = moving_frames(1, 21, 33)
    path = write_h264(tmp_path / "odd.mkv", frame, codec="ffv1", pix_fmt="bgr0")
    with path.open("rb") as handle, open_video(handle, name="odd.mkv") as reader:
        decoded = list(reader.frames())
    assert len(decoded) == 1 and decoded[0].shape == (21, 33, 3)
    np.testing.assert_array_equal(decoded[0], frame[0])  # lossless


def test_official_frame_selection_options(tmp_path):
    path = write_h264(tmp_path / "b.mp4", moving_frames(30, 40, 64), fps=24)
    options = DecodeOptions(max_res=32, target_fps=8, max_len=6)
    with open_video(path, options) as reader:
        decoded = list(reader.frames())
        assert reader.info.stride == 3 and reader.info.fps == 8
    assert len(decoded) == 6
    assert decoded[0].shape == (20, 32, 3)  # 40x64 capped at 32: 20 x 32
    assert output_size(1080, 1920, 1280) == (720, 1280)
    assert output_size(101, 199, 100) == (52, 100)  # round(50.75) = 51 -> even 52


def test_rotation_metadata_gives_upright_frames(tmp_path):
    frames = [np.zeros((20, 40, 3), np.uint8) for _ in range(2)]
    for frame in frames:
        frame[:6, :10] = 255  # top-left block
    path = write_h264(tmp_path / "r.mp4", frames, rotation=90)
    with open_video(path) as reader:
        upright = next(reader.frames())
        assert reader.info.rotation == 90
    assert upright.shape == (40, 20, 3)
    # 90 degrees counter-clockwise: the top-left block ends bottom-left
    rows, cols = np.nonzero(upright[..., 0] > 128)
    assert rows.min() >= 28 and cols.max() <= 7


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "cannot open video"),
        (b"this is a text file, not a video\n" * 20, "cannot open video"),
    ],
)
def test_non_videos_fail_with_one_clear_error(tmp_path, content, message):
    path = tmp_path / "bad.mp4"
    path.write_bytes(content)
    with pytest.raises(VideoDecodeError, match=message) as info, open_video(path) as reader:
        list(reader.frames())
    assert "bad.mp4" in str(info.value)


def test_truncated_video_fails_naming_the_file(tmp_path):
    good = write_h264(tmp_path / "good.mp4", moving_frames(20, 32, 32))
    broken = tmp_path / "truncated.mp4"
    broken.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(VideoDecodeError, match=r"truncated\.mp4"), open_video(broken) as reader:
        list(reader.frames())


def test_missing_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="does not exist"):
        open_video(tmp_path / "nope.mp4")


def _info(tmp_path, frames=10, height=12, width=16, fps=10.0):
    path = write_mp4v(tmp_path / "src.mp4", moving_frames(frames, height, width), fps=fps)
    with open_video(path) as reader:
        return reader.info


def test_depth_chunks_round_trip_in_float16(tmp_path):
    info = _info(tmp_path)
    depths = [
        np.random.default_rng(i).uniform(0, 5, (12, 16)).astype(np.float32) for i in range(10)
    ]
    out = DepthOutputs(tmp_path / "out", info, OutputOptions(chunk_frames=4, preview=False))
    for i, depth in enumerate(depths):
        out.write(i, depth)
    files = out.close({"model_size": "tiny"})
    assert [f for f in files if f.startswith("depth")] == [
        "depth_00000.npz",
        "depth_00001.npz",
        "depth_00002.npz",
    ]
    loaded = [np.load(tmp_path / "out" / f) for f in files if f.endswith(".npz")]
    stacked = np.concatenate([d["depth"] for d in loaded])
    assert stacked.dtype == np.float16
    assert np.concatenate([d["frame_index"] for d in loaded]).tolist() == list(range(10))
    np.testing.assert_allclose(stacked, np.stack(depths), rtol=1e-3, atol=1e-3)
    meta = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert meta["frames"] == 10 and meta["model_size"] == "tiny"


def test_short_video_gets_a_single_npz(tmp_path):
    info = _info(tmp_path, frames=3)
    out = DepthOutputs(tmp_path / "o", info, OutputOptions(chunk_frames=8, preview=False))
    for i in range(3):
        out.write(i, np.ones((12, 16), np.float32))
    assert out.close()[0] == "depth.npz"


def test_png16_and_previews_use_one_range_for_the_video(tmp_path):
    info = _info(tmp_path, frames=12)
    options = OutputOptions(png16=True, grayscale=True, side_by_side=True, warmup=4)
    out = DepthOutputs(tmp_path / "o", info, options)
    for i in range(12):
        out.write(i, np.full((12, 16), 1.0 + i * 0.01, np.float32), np.zeros((12, 16, 3), np.uint8))
    files = out.close()
    meta = json.loads((tmp_path / "o" / "metadata.json").read_text())
    scale = meta["png16_scale"]
    import cv2

    png = cv2.imread(str(tmp_path / "o" / "png16" / "000005.png"), cv2.IMREAD_UNCHANGED)
    assert png.dtype == np.uint16
    np.testing.assert_allclose(png * scale, 1.05, rtol=1e-4)
    for name, width in [("preview.mp4", 16), ("preview_gray.mp4", 16), ("side_by_side.mp4", 32)]:
        assert name in files
        with open_video(tmp_path / "o" / name) as reader:
            decoded = list(reader.frames())
            assert reader.info.fps == pytest.approx(10)
        assert len(decoded) == 12 and decoded[0].shape == (12, width, 3)
    # one range: brightness rises with depth across frames (no per-frame normalisation)
    with open_video(tmp_path / "o" / "preview_gray.mp4") as reader:
        means = [f.mean() for f in reader.frames()]
    assert means[-1] > means[0] + 50


def test_the_preview_colour_map_is_opencv_s_inferno_pixel_for_pixel():
    import cv2

    from vda.platform.video.writers import inferno

    gray = np.random.default_rng(5).integers(0, 256, (37, 53), dtype=np.uint8)
    assert np.array_equal(inferno(gray), cv2.applyColorMap(gray, cv2.COLORMAP_INFERNO))
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    assert np.array_equal(inferno(levels), cv2.applyColorMap(levels, cv2.COLORMAP_INFERNO))


def test_the_preview_range_is_set_by_the_warm_up_and_then_only_widens(tmp_path):
    """The range is the 1 % and 99 % ranked values of the warm-up frames' every other pixel
    of every other row; a later frame's 99 % ranked value of every fourth pixel of every
    fourth row widens it, and a darker frame never narrows it back (no flicker)."""
    info = _info(tmp_path, frames=3)
    rows = np.repeat(np.arange(12, dtype=np.float32)[:, None], 16, axis=1)  # row r is r
    out = DepthOutputs(tmp_path / "o", info, OutputOptions(warmup=1, depth_npz=False))
    out.write(0, rows)
    # 48 sampled values, rows 0, 2, ..., 10 eight times each: ranks int(0.01 x 47) = 0 and
    # int(0.99 x 47) = 46, the values 0 and 10
    assert out._range == (0.0, 10.0)
    out.write(1, rows + 20)  # rows 0, 4, 8 sampled: 20, 24, 28; rank int(0.99 x 11) = 10: 28
    out.write(2, rows - 5)  # lower: the range stays
    out.close()
    meta = json.loads((tmp_path / "o" / "metadata.json").read_text())
    assert meta["preview_range"] == [0.0, 28.0]
