"""The engine's memory bound: peak RSS of a fresh process streaming a short and a long video.

A fresh process per video, so that each peak is that video's alone (a
process's peak only grows): each streams synthetic frames through the engine
and the depth writers (tiny model, small frames) and reports its peak. The bound holds when the
10,000-frame run's peak is within 1.1x of the 500-frame run's.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import tempfile
from pathlib import Path

from vda.model.inference import InferenceConfig, StreamingDepthEngine

from .engine_timing import random_model, synthetic_frames


def peak_rss_mib() -> float:
    """This process's peak resident memory (VmHWM).

    Not `getrusage().ru_maxrss`: Linux keeps that across exec, so a child
    spawned by a large benchmark process would report its parent's peak.
    """
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def peak_rss_child(frames: int, height: int, width: int) -> None:
    """Entry point of the memory subprocess: stream, write, print peak RSS in MiB as JSON."""
    from vda.platform.video.decode import VideoInfo
    from vda.platform.video.writers import DepthOutputs, OutputOptions

    model = random_model("tiny").eval()
    engine = StreamingDepthEngine(model, InferenceConfig(input_size=height))
    info = VideoInfo("synthetic", width, height, width, height, 30.0, 30.0, 1, 0, "raw", frames)
    with tempfile.TemporaryDirectory() as folder:
        outputs = DepthOutputs(
            Path(folder),
            info,
            OutputOptions(preview=True),
            on_file_done=lambda path: path.unlink(),  # as the batch job uploads and deletes
        )
        count = 0
        for index, depth in engine.run(synthetic_frames(frames, height, width)):
            outputs.write(index, depth)
            count += 1
        outputs.close()
    print(json.dumps({"frames": count, "peak_rss_mib": peak_rss_mib()}))


def measure_memory(frames: int, height: int, width: int) -> dict:
    code = (
        "import sys; from vda.platform.bench.engine_memory import peak_rss_child; "
        f"peak_rss_child({frames}, {height}, {width})"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])
