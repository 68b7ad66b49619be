#!/usr/bin/env python3
"""`make gpu-check`: the project's GPU claims, each run as a short step under its own limit.

Why a script and not tests: the suite runs on CPU-only machines, and a GPU is
lent to a session only by chance, for minutes. This one command, run from the
checkout with `.venv` built, checks every GPU claim on such a machine within
8 minutes (one H200/H100-class GPU) and installs nothing. It prints one line
per step, `[PASS|FAIL|SKIP|TIMEOUT] step: figures`, then a table of the
machine (device, driver, torch / CUDA versions, date) to paste into
docs/gpu-check.md. Exit status 0 when every step passed or was skipped.

Steps (each a plain function here, so tests/code/test_gpu_check.py runs them
on CPU with the tiny model: `--device cpu --tiny`):

- engine: the streaming engine in fp32 on the GPU equals the CPU engine;
  fp16 and bf16 stay within a stated tolerance of fp32; every speed lever on
  (`SpeedOptions()`) equals `SpeedOptions.baseline()`; encoder cache on.
- latency: ms per frame of vits / vitb / vitl at 518x518, fp16, windows of
  32, eager and compiled; peak GPU memory; VDA-S against the paper's 7.5 ms.
- online: the online (streaming) engine, fp32 on the GPU against the CPU, fp16
  against fp32, p50 / p95 ms per frame.
- bulk: `vda infer` (`run_infer`) over a local archive with one GPU actor and
  with two actors sharing the GPU, against the bare engine on the same frames,
  and the GPU's busy share while the job ran.
- train: two Ray Train workers (NCCL on GPU) through the training driver, or,
  on a machine of one GPU, the driver's pieces with 0.5 GPU per worker (one
  worker through the driver where NCCL refuses two ranks on one device); bf16
  autocast, a few steps: finite losses, identical weights on every rank, a
  checkpoint written and resumed.
- onnx: the exported vits through ONNX Runtime's CUDA provider against
  PyTorch on the GPU.

Each step runs in a child process of its own session, so a hang (a stuck
NCCL rendezvous, a compile that never ends) becomes a TIMEOUT line and the
next step still runs; the child's Ray processes die with it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

# the steps live in gpu_steps/ beside this file, found however this file is loaded; the
# names the tests read through this script are re-exported (`x as x`)
sys.path.insert(0, str(Path(__file__).resolve().parent))
from gpu_steps.bulk import BusyMeter as BusyMeter
from gpu_steps.bulk import check_bulk
from gpu_steps.common import FP32_TOLERANCE as FP32_TOLERANCE
from gpu_steps.common import (
    FULL,
    LIMITS_S,
    MIN_STEP_S,
    ROOT,
    STEPS,
    TINY,
    TOTAL_BUDGET_S,
    Outcome,
    first_line,
)
from gpu_steps.common import ONNX_TOLERANCE as ONNX_TOLERANCE
from gpu_steps.engine import check_engine, check_latency
from gpu_steps.machine import machine_table, print_table
from gpu_steps.online import check_online
from gpu_steps.onnx import check_onnx
from gpu_steps.train import _train_config as _train_config
from gpu_steps.train import check_train

STEP_FUNCTIONS: dict[str, Callable[..., Outcome]] = {
    "engine": check_engine,
    "latency": check_latency,
    "online": check_online,
    "bulk": check_bulk,
    "train": check_train,
    "onnx": check_onnx,
}
WORKDIR_STEPS = ("bulk", "train", "onnx")  # the steps that take a work folder

# -- running the steps -------------------------------------------------------------------


def _session_members(session: int) -> list[int]:
    """Live processes of `session` (the step's child started it): Ray's workers make process
    groups of their own, so the session, not the group, holds everything the step began.
    Zombies are left out: they are dead, waiting for a parent to reap them."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == session and fields[0] not in ("Z", "X"):  # state ... session
                members.append(int(entry.name))
    return members


def _end_session(process: subprocess.Popen) -> None:
    """End the step's child and every process of its session: TERM, a few seconds to exit,
    then KILL, repeated while any is left (a dying raylet may still start a worker)."""
    for sig, wait in ((signal.SIGTERM, 5.0), *[(signal.SIGKILL, 1.0)] * 10):
        process.send_signal(sig)  # a no-op once the child is reaped
        for pid in _session_members(process.pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if process.poll() is not None and not _session_members(process.pid):
                return
            time.sleep(0.1)


def run_step_in_child(name: str, device: str, tiny: bool, limit_s: float, log_dir: Path) -> dict:
    """Run one step in a child process (a session of its own) under `limit_s`; its progress
    lines are echoed live, everything else it prints goes to `log_dir/<step>.log`."""
    workdir = Path(tempfile.mkdtemp(prefix=f"gpu-check-{name}-"))
    result_path = workdir / "result.json"
    log_path = log_dir / f"{name}.log"
    command = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--run-step",
        name,
        "--device",
        device,
        "--workdir",
        str(workdir / "w"),
        "--result",
        str(result_path),
        "--log",
        str(log_path),
        "--limit-s",
        str(limit_s),
    ]
    if tiny:
        command.append("--tiny")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "PYTHONUNBUFFERED": "1"}
    env.setdefault("RAY_AUTH_MODE", "disabled")  # a throwaway local instance
    env.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    env.pop("RAY_ADDRESS", None)  # never a cluster the environment points at
    started = time.monotonic()
    with log_path.open("a") as log:  # what the child prints before it redirects its output
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=log,
            stdin=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
        )
    last: list[str] = []

    def echo() -> None:
        for line in process.stdout:
            print(line, end="", flush=True)
            last[:] = [line.strip()]

    reader = threading.Thread(target=echo, daemon=True)
    reader.start()
    timed_out = False
    try:
        process.wait(timeout=limit_s)
    except subprocess.TimeoutExpired:
        timed_out = True
    _end_session(process)  # also ends anything the step left behind
    reader.join(timeout=5)
    seconds = time.monotonic() - started
    record: dict[str, Any] = {
        "step": name,
        "seconds": seconds,
        "limit_s": limit_s,
        "log": str(log_path),
        "session": process.pid,
    }
    if timed_out:
        record.update(
            status="TIMEOUT",
            summary=f"no result within its {limit_s:.0f} s limit"
            + (f"; last progress: {last[0]}" if last else "")
            + f" (log: {log_path})",
        )
    elif result_path.exists():
        record.update(json.loads(result_path.read_text()))
    else:
        record.update(
            status="FAIL",
            summary=f"the step's process exited with {process.returncode} and no result "
            f"(log: {log_path}): {_tail(log_path)}",
        )
    shutil.rmtree(workdir, ignore_errors=True)
    return record


def _tail(path: Path) -> str:
    with contextlib.suppress(OSError):
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        return lines[-1][:300] if lines else "(empty log)"
    return "(no log)"


def child_main(args: argparse.Namespace) -> int:
    """Inside the step's process: progress to the parent's pipe, all other output to the log,
    the outcome to --result as JSON."""
    global _notes
    sys.stdout.flush()
    _notes = os.fdopen(os.dup(1), "w", buffering=1)
    log = open(args.log, "a")  # noqa: SIM115 - stays open for the process's life
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    name = args.run_step
    params = dict((TINY if args.tiny else FULL)[name])
    if name in WORKDIR_STEPS:
        params["workdir"] = args.workdir
    if name == "latency" and args.limit_s:  # a margin to print and write the result
        params["deadline"] = time.monotonic() + float(args.limit_s) - 10
    try:
        outcome = STEP_FUNCTIONS[name](device=args.device, **params)
    except Exception as error:
        traceback.print_exc()
        outcome = Outcome("FAIL", f"{first_line(error)} (log: {args.log})")
    finally:
        with contextlib.suppress(Exception):
            import ray

            if ray.is_initialized():
                ray.shutdown()
    Path(args.result).write_text(json.dumps(asdict(outcome), default=_plain))
    return 0


def _plain(value: Any) -> Any:
    """JSON for numpy scalars and arrays in figures."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def _parse_limits(pairs: list[str]) -> dict[str, float]:
    limits = dict(LIMITS_S)
    for pair in pairs:
        step, _, seconds = pair.partition("=")
        if step not in STEPS or not seconds:
            raise SystemExit(f"--limit takes STEP=SECONDS with STEP in {', '.join(STEPS)}")
        limits[step] = float(seconds)
    return limits


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Check the project's GPU claims, one short step each (docs/gpu-check.md)."
    )
    parser.add_argument(
        "--steps",
        default=",".join(STEPS),
        help=f"comma-separated steps to run (default: {','.join(STEPS)})",
    )
    parser.add_argument(
        "--tiny", action="store_true", help="every step with the tiny model and small frames"
    )
    parser.add_argument(
        "--device",
        choices=("cuda", "cpu"),
        default="cuda",
        help="cpu: run the steps on CPU even where a GPU exists (tests)",
    )
    parser.add_argument("--json", type=Path, help="write the results here")
    parser.add_argument(
        "--budget",
        type=float,
        default=TOTAL_BUDGET_S,
        help=f"seconds for all steps together (default {TOTAL_BUDGET_S:.0f})",
    )
    parser.add_argument(
        "--limit",
        action="append",
        default=[],
        metavar="STEP=SECONDS",
        help="a step's own time limit (defaults: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in LIMITS_S.items())
        + ")",
    )
    parser.add_argument("--log-dir", type=Path, help="step logs (default: a new /tmp folder)")
    for hidden in ("--run-step", "--workdir", "--result", "--log", "--limit-s"):
        parser.add_argument(hidden, help=argparse.SUPPRESS)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the chosen steps, each in its own process and time limit, and report; 0 when
    every step passed or was skipped (a machine without CUDA skips them all)."""
    args = build_parser().parse_args(argv)
    if args.run_step:
        return child_main(args)
    steps = [s.strip() for s in args.steps.split(",") if s.strip()]
    unknown = [s for s in steps if s not in STEPS]
    if unknown:
        raise SystemExit(f"unknown steps {unknown}; choose from {', '.join(STEPS)}")
    limits = _parse_limits(args.limit)
    import torch

    records: list[dict[str, Any]] = []
    ran_on = args.device
    if args.device == "cuda" and not torch.cuda.is_available():
        ran_on = "nothing (no CUDA device)"
        build = f"CUDA {torch.version.cuda}" if torch.version.cuda else "a CPU-only build"
        print(
            f"no CUDA device: torch {torch.__version__} ({build}) sees no GPU; every step is "
            "skipped (--device cpu runs them on CPU)",
            flush=True,
        )
        for name in steps:
            records.append({"step": name, "status": "SKIP", "summary": "no CUDA device"})
            print(f"[SKIP] {name}: no CUDA device", flush=True)
    else:
        log_dir = args.log_dir or Path(tempfile.mkdtemp(prefix="gpu-check-logs-"))
        log_dir.mkdir(parents=True, exist_ok=True)
        device = "cuda" if args.device == "cuda" else "cpu"
        print(
            f"gpu-check: {', '.join(steps)} on {device}"
            f"{' (tiny model)' if args.tiny else ''}; budget {args.budget:.0f} s; "
            f"logs in {log_dir}",
            flush=True,
        )
        started = time.monotonic()
        for name in steps:
            left = args.budget - (time.monotonic() - started)
            limit = min(limits[name], left)
            print(f"{name} (limit {limit:.0f} s) ...", flush=True)
            if left < MIN_STEP_S:
                record = {
                    "step": name,
                    "status": "TIMEOUT",
                    "summary": f"not started: {left:.0f} s left of the {args.budget:.0f} s budget",
                }
            else:
                record = run_step_in_child(name, device, args.tiny, limit, log_dir)
            records.append(record)
            took = f" ({record['seconds']:.0f} s)" if "seconds" in record else ""
            print(f"[{record['status']}] {name}: {record['summary']}{took}", flush=True)
    table = machine_table(ran_on)
    words = {"PASS": "passed", "FAIL": "failed", "TIMEOUT": "timed out", "SKIP": "skipped"}
    counts = {word: sum(1 for r in records if r["status"] == s) for s, word in words.items()}
    table["result"] = ", ".join(f"{n} {word}" for word, n in counts.items() if n) or "no steps"
    print()
    print_table(table)
    passed = all(r["status"] in ("PASS", "SKIP") for r in records)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        report = {"machine": table, "steps": records, "passed": passed}
        args.json.write_text(json.dumps(report, indent=2, default=_plain))
    return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
