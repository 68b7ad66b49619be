"""ONNX export: ONNX Runtime equals PyTorch, failures keep no file, the export streams."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from helpers import tiny_model
from videos import moving_frames, write_mp4v

from vda.jobs.cli import main
from vda.model import ModelConfig, VideoDepthAnything, save_checkpoint
from vda.model.inference import InferenceConfig, StreamingDepthEngine
from vda.model.onnx_export import ExportSettings, OnnxExportError, export_onnx, read_metadata
from vda.model.onnx_runtime import OnnxNetwork, OnnxNetworkError

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("size", [(518, 518), (518, 924)])
def test_onnx_export_equals_pytorch_at_two_sizes(tmp_path, size):
    model = tiny_model(seed=41)
    settings = ExportSettings(frames=2, height=size[0], width=size[1])
    report = export_onnx(model, tmp_path / "tiny.onnx", settings)
    assert [c["file"] for c in report.checks] == [
        f"{name} at {size[0]}x{size[1]}"
        for name in ("tiny.onnx", "tiny.encoder.onnx", "tiny.head.onnx")
    ]
    assert all(c["max_diff_of_range"] <= 1e-4 for c in report.checks)
    meta = read_metadata(tmp_path / "tiny.onnx")
    assert meta["size"] == "tiny" and meta["metric"] is False and meta["part"] == "whole"
    assert meta["opset"] >= 17 and meta["settings"]["height"] == size[0]


def test_onnx_export_that_fails_its_check_keeps_no_file(tmp_path):
    settings = ExportSettings(frames=2, height=28, width=42, tolerance=1e-12)
    with pytest.raises(OnnxExportError, match=r"differs from PyTorch by .* the export is refused"):
        export_onnx(tiny_model(seed=42), tmp_path / "m.onnx", settings)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.long  # 35 s here; the refusal path is also covered by the failed-check test
def test_onnx_dynamic_size_is_refused_with_the_reason(tmp_path):
    settings = ExportSettings(frames=2, height=28, width=42, dynamic=True)
    with pytest.raises(OnnxExportError, match="Dynamic H and W do not survive"):
        export_onnx(tiny_model(seed=42), tmp_path / "m.onnx", settings)
    assert list(tmp_path.iterdir()) == []


def test_onnx_engine_streams_a_video_as_the_pytorch_engine_does(tmp_path):
    model = tiny_model(seed=43)
    export_onnx(model, tmp_path / "m.onnx", ExportSettings(frames=32, height=28, width=42))
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (20, 30, 3), dtype=np.uint8) for _ in range(60)]
    config = InferenceConfig(input_size=28)
    expected = np.stack([d for _, d in StreamingDepthEngine(model, config).run(iter(frames))])
    network = OnnxNetwork(tmp_path / "m.onnx")
    engine = StreamingDepthEngine(network, InferenceConfig(input_size=28), device="cpu")
    got = np.stack([d for _, d in engine.run(iter(frames))])
    assert engine.encoder_calls == 60 + 1  # the encoder cache works on the ONNX parts too
    assert np.abs(got - expected).max() <= 1e-4 * np.ptp(expected)
    # frames that preprocess to another size: one clear error
    with pytest.raises(OnnxNetworkError, match="export with --height 28 --width 56"):
        list(engine.run(iter([np.zeros((20, 40, 3), np.uint8)] * 3)))
    (tmp_path / "m.head.onnx").unlink()
    with pytest.raises(OnnxNetworkError, match=r"missing: .*m\.head\.onnx"):
        OnnxNetwork(tmp_path / "m.onnx")


def test_export_and_depth_jobs_with_the_onnx_engine(tmp_path, capsys):
    checkpoint = tmp_path / "tiny.ckpt"
    save_checkpoint(tiny_model(seed=44), checkpoint)
    onnx_path = tmp_path / "tiny.onnx"
    code = main(
        [
            "export",
            "--checkpoint",
            str(checkpoint),
            "-o",
            str(onnx_path),
            "--height",
            "28",
            "--width",
            "42",
        ]
    )
    assert code == 0 and "checked tiny.head.onnx at 28x42" in capsys.readouterr().out
    video = write_mp4v(tmp_path / "clip.mp4", moving_frames(40, 28, 42), fps=12)
    outputs = {}
    for engine in ("torch", "onnx"):
        weights = onnx_path if engine == "onnx" else checkpoint
        code = main(
            [
                "depth",
                str(video),
                "--checkpoint",
                str(weights),
                "--engine",
                engine,
                "-o",
                str(tmp_path / engine),
                "--input-size",
                "28",
                "--depth-dtype",
                "float32",
                "--no-preview",
            ]
        )
        assert code == 0
        folder = tmp_path / engine / "clip"
        outputs[engine] = np.load(folder / "depth.npz")["depth"]
        meta = json.loads((folder / "metadata.json").read_text())
        assert meta["engine"] == engine and meta["metadata_version"] == 3
    expected = outputs["torch"]
    assert np.abs(outputs["onnx"] - expected).max() <= 1e-4 * np.ptp(expected)


@pytest.mark.long
def test_onnx_export_of_vits_equals_pytorch(tmp_path):
    torch.manual_seed(0)
    model = VideoDepthAnything(ModelConfig(size="vits"))
    report = export_onnx(
        model, tmp_path / "vits.onnx", ExportSettings(frames=4, height=518, width=518)
    )
    assert all(c["max_diff_of_range"] <= 1e-4 for c in report.checks)
