"""Image-sequence folders are videos: natural order, source frame numbers kept, any format."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from helpers import tiny_model
from videos import moving_frames

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.model.inference import InferenceConfig, StreamingDepthEngine
from vda.platform.video import DecodeOptions, VideoDecodeError, open_video
from vda.platform.video.sequence import natural_key, srgb_from_linear


def _write_pngs(folder, frames, first=1001, pad=0):
    folder.mkdir(parents=True)
    for i in reversed(range(len(frames))):  # written out of order: the listing must sort
        name = f"{first + i:0{pad}d}.png" if pad else f"{first + i}.png"
        cv2.imwrite(str(folder / name), frames[i][..., ::-1])
    return folder


def test_image_sequence_order_is_natural_and_numbers_are_kept(tmp_path):
    frames = moving_frames(12, 28, 42)
    folder = _write_pngs(tmp_path / "shot_010", frames, first=1)  # 1.png .. 12.png, unpadded
    assert sorted(["10.png", "9.png", "1.png"], key=natural_key) == ["1.png", "9.png", "10.png"]
    with open_video(folder, DecodeOptions(target_fps=12), sequence_fps=24) as reader:
        got = list(reader.frames())
        assert reader.info.fps == 12 and reader.info.stride == 2
        assert reader.info.frame_numbers == (1, 3, 5, 7, 9, 11)
        assert reader.frame_count_estimate == 6
        assert [i for i, _ in reader.indexed_frames(4)] == [0, 4, 5]
    assert len(got) == 6  # every kept frame, none short
    for image, expected in zip(got, frames[::2]):
        np.testing.assert_array_equal(image, expected)


def test_image_sequence_folder_through_vda_depth_keeps_source_frame_numbers(tmp_path):
    checkpoint = tmp_path / "tiny.ckpt"
    save_checkpoint(tiny_model(seed=61), checkpoint)
    frames = moving_frames(40, 28, 42)
    folder = _write_pngs(tmp_path / "shot_020", frames, first=1001, pad=4)
    (folder / "sequence.json").write_text(json.dumps({"fps": 25}))
    code = main(
        [
            "depth",
            str(folder),
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(tmp_path / "out"),
            "--input-size",
            "28",
            "--depth-dtype",
            "float32",
            "--exr",
            "--no-preview",
        ]
    )
    assert code == 0
    out = tmp_path / "out" / "shot_020"
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["fps"] == 25 and meta["frames"] == 40 and meta["frame_numbers"] == "source"
    arrays = np.load(out / "depth.npz")
    assert arrays["frame_index"].tolist() == list(range(1001, 1041))
    assert sorted(p.name for p in (out / "exr").iterdir())[:2] == [
        "shot_020_001001.exr",
        "shot_020_001002.exr",
    ]
    engine = StreamingDepthEngine(tiny_model(seed=61), InferenceConfig(input_size=28))
    expected = np.stack([d for _, d in engine.run(iter(frames))])
    assert np.abs(arrays["depth"] - expected).max() <= 1e-5 * np.ptp(expected)


def test_exr_and_jpeg_sequence_folders_read_as_rgb(tmp_path):
    linear = np.linspace(0, 1, 28 * 42 * 3, dtype=np.float32).reshape(28, 42, 3)
    exr = tmp_path / "exr_seq"
    exr.mkdir()
    for i in range(3):
        write_exr_rgb(exr / f"plate.{i:04d}.exr", linear)
    with open_video(exr) as reader:
        image = next(reader.frames())
        assert reader.info.frame_numbers == (0, 1, 2)
    np.testing.assert_array_equal(image, srgb_from_linear(linear))
    jpg = tmp_path / "jpg_seq"
    jpg.mkdir()
    for i in range(2):
        cv2.imwrite(str(jpg / f"f_{i}.jpg"), np.full((28, 42, 3), (0, 0, 255), np.uint8))
    with open_video(jpg) as reader:
        image = next(reader.frames())
    assert image[..., 0].mean() > 240 and image[..., 2].mean() < 15  # BGR on disk, RGB out


def write_exr_rgb(path, rgb):
    import OpenEXR

    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": rgb}) as exr:
        exr.write(str(path))


def test_sequence_folder_failures_are_one_clear_error(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(VideoDecodeError, match="holds no images"):
        open_video(empty)
    broken = _write_pngs(tmp_path / "broken", moving_frames(3, 28, 42))
    (broken / "1002.png").write_bytes(b"not a png")
    with open_video(broken) as reader, pytest.raises(VideoDecodeError, match=r"1002\.png"):
        list(reader.frames())
    mixed = _write_pngs(tmp_path / "mixed", moving_frames(2, 28, 42))
    cv2.imwrite(str(mixed / "1003.png"), np.zeros((14, 14, 3), np.uint8))
    with open_video(mixed) as reader, pytest.raises(VideoDecodeError, match="first frame"):
        list(reader.frames())
