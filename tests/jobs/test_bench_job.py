"""`vda bench inference` runs and reports its ratios (what it measures is not asserted)."""

from __future__ import annotations

import json

from vda.jobs.cli import main


def test_inference_bench_reports_speed_and_memory_ratios(tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "inference",
            "--size",
            "tiny",
            "--frames",
            "40",
            "--height",
            "28",
            "--width",
            "42",
            "--input-size",
            "28",
            "--short-frames",
            "20",
            "--long-frames",
            "60",
            "--memory-size",
            "28",
            "--levers-frames",
            "33",
            "--compile",
            "--json",
            str(report_path),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("machine: ")
    assert "(target >= 1.2x)" in printed and "(target <= 1.1x)" in printed
    report = json.loads(report_path.read_text())
    assert "(CPU target >= 1.4x)" in printed
    runs = {run["name"]: run for run in report["levers"]["runs"]}
    assert set(runs) == {"baseline", "levers", "levers+compile"}
    assert runs["baseline"]["speedup"] == 1.0
    for run in runs.values():
        assert run["max_diff_of_peak"] <= 1e-5
        assert 0 < run["encoder_share"] + run["head_share"] <= 1.0
    assert report["speed"]["frames"] == 40
    assert report["speed"]["max_abs_diff"] <= 1e-5 * report["speed"]["output_range"]
    assert report["memory"]["short"]["frames"] == 20
    assert report["memory"]["long"]["frames"] == 60
    assert report["memory"]["ratio"] > 0


def test_inference_bench_compares_onnx_runtime_with_pytorch(tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "inference",
            "--engine",
            "onnx",
            "--size",
            "tiny",
            "--height",
            "28",
            "--width",
            "42",
            "--input-size",
            "28",
            "--levers-frames",
            "40",
            "--json",
            str(report_path),
        ]
    )
    assert code == 0
    assert "ONNX Runtime" in capsys.readouterr().out
    onnx = json.loads(report_path.read_text())["onnx"]
    assert onnx["frames"] == 40 and onnx["ratio"] > 0
    assert onnx["max_diff_of_range"] <= 1e-4
    assert onnx["providers"] == ["CPUExecutionProvider"]


def test_inference_bench_compares_online_with_offline(tmp_path, capsys):
    report_path = tmp_path / "bench.json"
    code = main(
        [
            "bench",
            "inference",
            "--online",
            "--size",
            "tiny",
            "--frames",
            "40",
            "--height",
            "28",
            "--width",
            "42",
            "--input-size",
            "28",
            "--json",
            str(report_path),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("machine: ") and "online vs offline (tiny, 40 frames" in printed
    result = json.loads(report_path.read_text())["online"]
    online, offline = result["online"], result["offline"]
    assert result["fps_ratio"] == online["fps"] / offline["fps"]
    assert result["latency_p50_ratio"] == online["latency_p50_ms"] / offline["latency_p50_ms"]
    for run in (online, offline):
        assert run["latency_p95_ms"] >= run["latency_p50_ms"] > 0
        assert run["fps"] == 40 / run["seconds"]
