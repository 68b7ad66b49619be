"""Make `tests/data/online_reference.npz`: the official online mode's depths on known inputs.

Run once, by hand, with a checkout of the official release (it is not a dependency of vda):

    git clone https://github.com/DepthAnything/Video-Depth-Anything /tmp/official
    pip install --target /tmp/offdeps easydict einops   # the release's own imports
    PYTHONPATH=/tmp/offdeps .venv/bin/python scripts/make_online_reference.py /tmp/official

It builds the official `VideoDepthAnything` of `video_depth_stream.py` (vits layout),
loads the random official-layout weights of `tests/online_reference.py` with strict=True,
feeds the 100 reference frames one at a time to its `infer_video_depth_one` (fp32 on CPU,
the release's own loop and cache), and stores the depths with the hashes of the weights and
frames that produced them and the release's commit. `tests/model/test_online.py` runs
vda's online engine on the same inputs and compares.
"""

from __future__ import annotations

import argparse
import hashlib
import subprocess
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from online_reference import (  # noqa: E402  (tests/ is put on the path just above)
    INPUT_SIZE,
    official_layout_weights,
    reference_frames,
    weights_sha256,
)

VITS = {"encoder": "vits", "features": 64, "out_channels": [48, 96, 192, 384]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "official", type=Path, help="checkout of DepthAnything/Video-Depth-Anything"
    )
    parser.add_argument("--output", type=Path, default=ROOT / "tests/data/online_reference.npz")
    args = parser.parse_args()
    sys.path.insert(0, str(args.official))
    from video_depth_anything.video_depth_stream import VideoDepthAnything  # the release's

    commit = subprocess.run(
        ["git", "-C", str(args.official), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    model = VideoDepthAnything(**VITS)
    state = model.state_dict()
    weights = official_layout_weights({key: value.shape for key, value in state.items()})
    state.update(weights)
    model.load_state_dict(state, strict=True)
    model = model.eval()
    frames = reference_frames()
    depths = np.stack(
        [
            model.infer_video_depth_one(frame, input_size=INPUT_SIZE, device="cpu", fp32=True)
            for frame in frames
        ]
    ).astype(np.float32)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        args.output,
        depth=depths,
        weights_sha256=weights_sha256(weights),
        frames_sha256=hashlib.sha256(frames.tobytes()).hexdigest(),
        official_commit=commit,
        torch_version=torch.__version__,
    )
    print(f"{args.output}: {depths.shape[0]} frames, range {depths.min():.4f}..{depths.max():.4f}")


if __name__ == "__main__":
    main()
