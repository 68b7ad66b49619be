"""`vda depth` end to end: a real mp4 into every output format."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from helpers import run_metadata_keys, tiny_model
from videos import moving_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import save_checkpoint
from vda.model.checkpoint import file_sha256
from vda.model.inference import InferenceConfig, StreamingDepthEngine
from vda.platform.video import open_video


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    save_checkpoint(tiny_model(seed=31), path)
    return path


def test_depth_job_writes_every_output_format(tmp_path, checkpoint):
    video = write_mp4v(tmp_path / "clip.mp4", moving_frames(40, 28, 42), fps=12)
    out = tmp_path / "out"
    code = main(
        [
            "depth",
            str(video),
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(out),
            "--input-size",
            "28",
            "--chunk-frames",
            "16",
            "--png16",
            "--grayscale",
            "--side-by-side",
        ]
    )
    assert code == 0
    folder = out / "clip"
    meta = json.loads((folder / "metadata.json").read_text())
    assert meta["frames"] == 40 and meta["fps"] == pytest.approx(12)
    assert (meta["height"], meta["width"]) == (28, 42)
    assert meta["checkpoint_sha256"] == file_sha256(checkpoint)
    assert meta["model_size"] == "tiny" and meta["depth_kind"] == "relative_disparity"
    assert run_metadata_keys() <= set(meta) and meta["metadata_version"] == 3  # vda infer's too
    assert meta["depth_files"] == ["depth_00000.npz", "depth_00001.npz", "depth_00002.npz"]

    chunks = [np.load(folder / name) for name in meta["depth_files"]]
    depth = np.concatenate([c["depth"] for c in chunks]).astype(np.float32)
    assert depth.shape == (40, 28, 42)
    assert np.concatenate([c["frame_index"] for c in chunks]).tolist() == list(range(40))

    # the same engine on the same decoded frames, without the job around it
    with open_video(video) as reader:
        frames = list(reader.frames())
    engine = StreamingDepthEngine(tiny_model(seed=31), InferenceConfig(input_size=28))
    direct = np.stack([d for _, d in engine.run(frames)])
    np.testing.assert_allclose(depth, direct, rtol=2e-3, atol=2e-3)

    pngs = sorted((folder / "png16").glob("*.png"))
    assert len(pngs) == 40
    png = cv2.imread(str(pngs[7]), cv2.IMREAD_UNCHANGED)
    np.testing.assert_allclose(png * meta["png16_scale"], direct[7], atol=meta["png16_scale"])
    for name, width in [("preview.mp4", 42), ("preview_gray.mp4", 42), ("side_by_side.mp4", 84)]:
        with open_video(folder / name) as reader:
            decoded = list(reader.frames())
            assert reader.info.fps == pytest.approx(12)
        assert len(decoded) == 40 and decoded[0].shape == (28, width, 3)


def test_depth_job_offline_without_cached_weights_says_where_they_come_from(
    tmp_path, capsys, monkeypatch
):
    # the default model, offline, with an empty cache: one line naming the file and the fix
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-cache"))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    video = write_mp4v(tmp_path / "clip.mp4", moving_frames(3, 28, 28))
    assert main(["depth", str(video)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("vda depth: checkpoint vits: HF_HUB_OFFLINE")
    assert "video_depth_anything_vits.pth is not in the Hugging Face cache" in err
    assert "huggingface.co/depth-anything/Video-Depth-Anything-Small" in err


def test_depth_job_reports_a_broken_video_and_finishes_the_rest(tmp_path, checkpoint, capsys):
    good = write_mp4v(tmp_path / "good.mp4", moving_frames(5, 28, 28))
    bad = tmp_path / "broken.mp4"
    bad.write_text("not a video")
    out = tmp_path / "out"
    code = main(
        [
            "depth",
            str(bad),
            str(good),
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(out),
            "--input-size",
            "28",
            "--no-preview",
        ]
    )
    assert code == 1
    assert "broken.mp4: FAILED: cannot open video" in capsys.readouterr().err
    assert (out / "good" / "depth.npz").exists()
    assert not (out / "broken").exists()


def test_depth_config_from_a_file_flags_and_overrides_in_that_order(tmp_path, capsys):
    """Flags are shorthands for keys: the file sets keys, a flag overrides the file, a
    key=value overrides both, and switches set their key only when given."""
    import yaml

    config = tmp_path / "depth.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "videos": ["from-file.mp4"],
                "input_size": 266,
                "outputs": {"png16": True, "chunk_frames": 64},
                "decode": {"max_res": 640},
            }
        )
    )
    argv = ["depth", "--config", str(config), "--input-size", "308", "--no-cache"]
    argv += ["--baseline-engine", "--compile", "decode.max_res=720", "--print-config"]
    assert main(argv) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["videos"] == ["from-file.mp4"]  # no video named: the file's stand
    assert printed["input_size"] == 308 and printed["decode"]["max_res"] == 720
    assert printed["outputs"]["png16"] is True and printed["outputs"]["chunk_frames"] == 64
    assert printed["outputs"]["preview"] is True  # --no-preview not given: the default stands
    assert printed["cache_encoder"] is False
    assert printed["speed"]["compile"] is True and printed["speed"]["channels_last"] is False
    assert main(["depth", "a.mp4", "./b=c.mp4", "--fp32", "--print-config"]) == 0
    printed = yaml.safe_load(capsys.readouterr().out)
    assert printed["videos"] == ["a.mp4", "./b=c.mp4"] and printed["precision"] == "fp32"


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["a.mp4", "outputs.colour=red"], "unknown config key(s) outputs.colour"),
        (["a.mp4", "input_size=big"], "input_size: expected an integer"),
        (["a.mp4", "online.queue_frames=0"], "online.queue_frames must be at least 1"),
    ],
)
def test_bad_depth_config_keys_are_named(arguments, message, capsys):
    assert main(["depth", *arguments, "--print-config"]) == 2
    error = capsys.readouterr().err
    assert message in error and "Traceback" not in error
