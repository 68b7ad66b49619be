"""`vda bench infer --stages`: CPU spent around the model, per frame, stage by stage.

On a GPU node the model needs a few ms per frame; every core-ms the job
spends around it decides how many CPUs a GPU needs to stay busy. Each stage
runs alone over the same frames of a synthetic 960 x 540 H.264 clip and is
timed in CPU time of this process (all its threads: `time.process_time`),
divided by the frames, after one untimed pass (first-use costs are not per
frame). The output stages run twice, with the settings
before this benchmark existed (npz at zlib 6, previews at x264 `veryfast`)
and with today's defaults, so the report says what each costs now and
before. Not included: the model itself, and per-video bookkeeping, which
`--many` measures per video.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .machine import describe_machine


def run_stage_bench(frames: int, width: int, height: int, input_size: int) -> dict:
    import numpy as np
    import torch

    from vda.model.inference import resize_depth
    from vda.model.transforms import preprocess_frames

    from ..data.synthetic import SyntheticConfig, SyntheticScene
    from ..video import DepthOutputs, OutputOptions, open_video
    from ..video.writers import write_video

    print(f"machine: {describe_machine()}", flush=True)
    scene = SyntheticScene(SyntheticConfig(frames=frames, height=height, width=width), 0)
    rendered = list(scene.frames())
    disparity = [
        np.where(f.depth > 0, 1.0 / np.maximum(f.depth, 1e-3), 0).astype(np.float32)
        for f in rendered
    ]
    costs: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        clip = write_video(root / "clip.mp4", (f.rgb for f in rendered), fps=24)

        def timed(name: str, work) -> None:
            work()  # warm: first-use costs (thread pools, page faults) are not per frame
            start = time.process_time()
            work()
            costs[name] = (time.process_time() - start) / frames * 1000

        decoded: list[np.ndarray] = []

        def decode() -> None:
            with open_video(clip) as reader:
                decoded[:] = list(reader.frames())

        timed("decode", decode)
        with open_video(clip) as reader:
            info = reader.info
        stack = np.stack(decoded)
        timed(
            "preprocess",
            lambda: [
                preprocess_frames(stack[i : i + 32], input_size) for i in range(0, frames, 32)
            ],
        )
        network = torch.from_numpy(np.stack(disparity))[:, None]
        network = torch.nn.functional.interpolate(network, scale_factor=input_size / height)[:, 0]
        timed("resize depth", lambda: resize_depth(network, (height, width)))
        settings = {
            "before": {"depth_compression": 6, "preview_preset": "veryfast"},
            "now": {},
        }
        for label, extra in settings.items():
            for stage, options in (
                ("depth npz", {"preview": False}),
                ("preview mp4", {"depth_npz": False}),
            ):
                out = root / f"{label}-{stage.replace(' ', '_')}"

                def write(options=options, extra=extra, out=out) -> None:
                    outputs = DepthOutputs(out, info, OutputOptions(**options, **extra))
                    for index, depth in enumerate(disparity):
                        outputs.write(index, depth)
                    outputs.close()

                timed(f"{stage} ({label})", write)
    outside = ["decode", "preprocess", "resize depth", "depth npz (now)", "preview mp4 (now)"]
    before = ["decode", "preprocess", "resize depth", "depth npz (before)", "preview mp4 (before)"]
    report = {
        "machine": describe_machine(),
        "frames": frames,
        "size": f"{width}x{height}",
        "core_ms_per_frame": costs,
        "total_now": sum(costs[k] for k in outside),
        "total_before": sum(costs[k] for k in before),
    }
    for name, value in costs.items():
        print(f"  {name:<22} {value:7.2f} core-ms per frame", flush=True)
    print(
        f"CPU outside the model at {width}x{height} with the default outputs: "
        f"{report['total_now']:.1f} core-ms per frame (before: {report['total_before']:.1f}; "
        "target <= 20)",
        flush=True,
    )
    return report
