"""`scripts/gpu_check.py` (`make gpu-check`) on this CPU-only machine.

The script is for GPU machines, lent rarely and briefly: it must not be first
run there. Here: without CUDA it skips every step and exits 0; every step's
function runs on CPU with the tiny model and returns sane figures; a step
past its limit becomes a TIMEOUT line and leaves no process behind.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    """The script as a module (it is not part of the installed package)."""
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


def _script(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _finite(*values: float) -> bool:
    return all(isinstance(v, float | int) and math.isfinite(v) for v in values)


def test_without_cuda_every_step_is_skipped_and_the_exit_status_is_0(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    out = _script("--json", str(tmp_path / "report.json"), timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "no CUDA device" in out.stdout
    for step in ("engine", "latency", "online", "bulk", "train", "onnx"):
        assert f"[SKIP] {step}: no CUDA device" in out.stdout
    assert "| torch " in out.stdout and "| driver " in out.stdout and "| date " in out.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["passed"] is True
    assert [s["status"] for s in report["steps"]] == ["SKIP"] * 6


@pytest.mark.integration
@pytest.mark.slow
def test_a_step_past_its_limit_is_a_timeout_and_leaves_no_process(gpu_check, tmp_path):
    """8 s: Ray is up, the training runs are not done. The step is ended with every process
    of its session (Ray's workers make process groups of their own), and the exit is 1."""
    out = _script(
        "--device",
        "cpu",
        "--tiny",
        "--steps",
        "train",
        "--limit",
        "train=8",
        "--json",
        str(tmp_path / "report.json"),
        "--log-dir",
        str(tmp_path / "logs"),
        timeout=120,
    )
    assert out.returncode == 1, out.stdout + out.stderr
    assert "[TIMEOUT] train" in out.stdout and "limit" in out.stdout
    (record,) = json.loads((tmp_path / "report.json").read_text())["steps"]
    assert record["status"] == "TIMEOUT"
    assert gpu_check._session_members(record["session"]) == []


@pytest.mark.slow
def test_engine_step_on_cpu(gpu_check):
    outcome = gpu_check.check_engine(device="cpu", **gpu_check.TINY["engine"])
    assert outcome.status == "PASS", outcome.summary
    figures = outcome.figures
    assert figures["windows"] == 2
    assert set(figures["resolutions"]) == {"42x42", "42x70"}
    for result in figures["resolutions"].values():
        diffs = [result[k] for k in ("fp32_vs_cpu", "levers_vs_baseline", "fp16_vs_fp32")]
        assert _finite(*diffs, result["bf16_vs_fp32"], result["output_range"])
        assert result["output_range"] > 0  # the comparison is not of flat outputs
        assert result["fp32_vs_cpu"] == 0.0  # on CPU the "device" engine is the CPU engine
        assert result["levers_vs_baseline"] <= gpu_check.FP32_TOLERANCE
        assert result["encoder_calls"] == 45  # 44 frames once each, one padding copy
        assert result["baseline_encoder_calls"] == 54  # 32 + 22 slots, padding encoded
    assert "fp32 vs CPU" in outcome.summary


def test_latency_step_on_cpu(gpu_check):
    outcome = gpu_check.check_latency(device="cpu", **gpu_check.TINY["latency"])
    assert outcome.status == "PASS", outcome.summary
    (run,) = outcome.figures["runs"].values()
    assert _finite(run["ms_per_frame"], run["model_ms_per_frame"], run["peak_mib"])
    assert 0 < run["model_ms_per_frame"] <= run["ms_per_frame"]
    assert "ms/frame" in outcome.summary


@pytest.mark.slow
@pytest.mark.long  # make test: tests/model/test_onnx.py checks ONNX Runtime against PyTorch
def test_onnx_step_on_cpu(gpu_check, tmp_path):
    outcome = gpu_check.check_onnx(device="cpu", workdir=str(tmp_path), **gpu_check.TINY["onnx"])
    assert outcome.status == "PASS", outcome.summary
    figures = outcome.figures
    assert figures["providers"][0] == "CPUExecutionProvider"
    assert _finite(figures["onnx_fps"], figures["torch_fps"], figures["max_diff_of_range"])
    assert figures["max_diff_of_range"] <= gpu_check.ONNX_TOLERANCE


def test_onnx_step_on_a_gpu_without_the_cuda_provider_is_skipped(gpu_check):
    import onnxruntime

    if "CUDAExecutionProvider" in onnxruntime.get_available_providers():
        pytest.skip("this onnxruntime has the CUDA provider")
    outcome = gpu_check.check_onnx(device="cuda")
    assert outcome.status == "SKIP" and "no CUDAExecutionProvider" in outcome.summary


def test_busy_meter_says_why_it_cannot_measure_without_a_gpu(gpu_check):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with gpu_check.BusyMeter(period_s=0.01) as meter:
        pass
    assert meter.mean is None
    assert meter.source.startswith("not measured (") and "pynvml" in meter.source


def test_the_training_step_builds_valid_configs_for_cpu_and_gpu(gpu_check, tmp_path):
    """The configs the step hands the driver, without Ray (the run itself is the long test)."""
    for cuda, workers in ((False, 2), (True, 1)):
        config = gpu_check._train_config(
            tmp_path, str(tmp_path / "data"), "x", "tiny", 28, 42, 3, workers, cuda, 2
        )
        assert config.use_gpu is cuda and config.num_workers == workers
        assert config.precision == "bf16" and config.epochs == 2 and config.steps_per_epoch == 3
        assert config.data.clip.clip_len <= config.model.num_frames


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.long  # half a minute; make test runs the same `vda infer` paths in test_infer*
def test_bulk_step_on_cpu_through_the_script(tmp_path):
    """`vda infer` with one actor, then two, on a local archive (Ray started by the step)."""
    out = _script(
        "--device",
        "cpu",
        "--tiny",
        "--steps",
        "bulk",
        "--limit",
        "bulk=300",
        "--json",
        str(tmp_path / "report.json"),
        "--log-dir",
        str(tmp_path / "logs"),
    )
    assert out.returncode == 0, out.stdout + (tmp_path / "logs" / "bulk.log").read_text()[-3000:]
    (record,) = json.loads((tmp_path / "report.json").read_text())["steps"]
    assert record["status"] == "PASS" and "[PASS] bulk" in out.stdout
    figures = record["figures"]
    assert _finite(figures["bare_fps"]) and figures["frames"] == 80
    for job in figures["jobs"].values():
        assert job["done"] == 2 and job["failed"] == 0
        assert _finite(job["job_fps"], job["ratio"]) and job["job_fps"] > 0
        assert job["precisions"] == ["fp32"]
    short = figures["short"]  # the short clips: every one done, the overhead a number
    assert short["videos"] == short["done"] == 6
    assert _finite(short["bare_ms"], short["job_ms"], short["overhead_ms"])
    assert short["overhead_ms"] == pytest.approx(short["job_ms"] - short["bare_ms"])
    assert "6 clips of 16 frames at 42x42" in out.stdout


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.long  # minutes on 2 cores: two Ray Train runs
def test_training_step_on_cpu_through_the_script(tmp_path):
    """Two gloo workers, a checkpoint, a resumed rerun: losses finite, ranks identical."""
    out = _script(
        "--device",
        "cpu",
        "--tiny",
        "--steps",
        "train",
        "--limit",
        "train=540",
        "--json",
        str(tmp_path / "report.json"),
        "--log-dir",
        str(tmp_path / "logs"),
    )
    assert out.returncode == 0, out.stdout + (tmp_path / "logs" / "train.log").read_text()[-3000:]
    (record,) = json.loads((tmp_path / "report.json").read_text())["steps"]
    figures = record["figures"]
    assert record["status"] == "PASS" and figures["backend"] == "gloo"
    assert figures["workers"] == 2 and figures["weight_spread"] == [0.0, 0.0]
    assert _finite(*figures["losses"]) and figures["steps_logged"] == list(range(1, 7))


@pytest.mark.integration
@pytest.mark.slow
@pytest.mark.long  # minutes on 2 cores: two Ray Train runs
def test_training_with_a_gpu_fraction_per_worker_runs_the_same_code_on_cpu(tmp_path):
    """The path two workers sharing one GPU take (`gpus_per_worker`), with CPU workers here."""
    code = (
        "import dataclasses, json, sys; sys.path.insert(0, 'scripts'); import gpu_check; "
        "o = gpu_check.check_train(device='cpu', trainer='scaled', workdir=sys.argv[1], "
        "**gpu_check.TINY['train']); print(json.dumps(dataclasses.asdict(o)))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "RAY_AUTH_MODE": "disabled"},
    )
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    outcome = json.loads(out.stdout.strip().splitlines()[-1])
    figures = outcome["figures"]
    assert outcome["status"] == "PASS", outcome["summary"]
    assert figures["trainer"] == "scaled" and figures["weight_spread"] == [0.0, 0.0]
    assert figures["steps_logged"] == list(range(1, 7))


@pytest.mark.slow
@pytest.mark.long  # a minute of compiling on 2 cores
def test_compiled_latency_is_timed_without_compiling_inside_the_timing(gpu_check):
    """99 frames show the timed engine no shape the 55-frame warm-ups did not: the compiled
    engine's ms/frame is the compiled network, not a recompile (64 frames read 13x eager)."""
    outcome = gpu_check.check_latency(
        device="cpu", sizes=("tiny",), side=42, frames=99, compile_modes=(False, True)
    )
    assert outcome.status == "PASS", outcome.summary
    runs = outcome.figures["runs"]
    assert runs["tiny compiled"]["vs_eager"] <= gpu_check.FP32_TOLERANCE  # fp32 on CPU
    assert runs["tiny compiled"]["ms_per_frame"] < 3 * runs["tiny eager"]["ms_per_frame"]


def test_online_step_on_cpu(gpu_check):
    outcome = gpu_check.check_online(device="cpu", **gpu_check.TINY["online"])
    assert outcome.status == "PASS", outcome.summary
    figures = outcome.figures
    assert figures["fp32_vs_cpu"] == 0.0 and figures["fp16_vs_fp32"] == 0.0  # all fp32 on CPU
    assert figures["latency_p95_ms"] >= figures["latency_p50_ms"] > 0
    assert "fp16 latency p50" in outcome.summary
