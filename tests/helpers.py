"""Helpers shared by tests (imported as `helpers`: pytest puts tests/ on sys.path)."""

from __future__ import annotations

import random
import socket

import torch
from torch import nn

from vda.model import ModelConfig, VideoDepthAnything


def randomize(model: nn.Module, seed: int = 0, std: float = 0.05) -> nn.Module:
    """Give every parameter random values, so that zero-initialised parts are not trivially zero.

    The last conv's bias is made positive so the ReLU output is not all zeros,
    which would make any equality test pass vacuously.
    """
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
            if "norm" in name and name.endswith("weight"):
                parameter.add_(1.0)
        head = getattr(model, "head", None)
        if head is not None:
            head.scratch.output_conv2[2].bias.fill_(0.5)
    return model


def tiny_model(seed: int = 0, randomized: bool = True, **overrides) -> VideoDepthAnything:
    torch.manual_seed(seed)
    model = VideoDepthAnything(ModelConfig(size="tiny", **overrides)).eval()
    return randomize(model, seed) if randomized else model


def random_clip(batch: int = 1, frames: int = 4, height: int = 42, width: int = 56, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, 3, height, width, generator=generator)


# Ports the tests hand to servers: above Ray's default worker ports (10002-19999) and the
# tests' fixed worker-port ranges (20000-26999), below the kernel's ephemeral range.
_SERVER_PORTS = range(27000, 32768)
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port nothing listens on right now, for a server a test starts.

    Not one the kernel would pick: a port from the ephemeral range (what binding port 0
    gives) can be taken by any outgoing connection of a running Ray node between this
    pick and the server's bind, and a `ray start --head` on a taken port exits 1 (CI
    saw it). Never the same port twice in one test session."""
    for port in random.sample(_SERVER_PORTS, len(_SERVER_PORTS)):
        if port in _handed_out:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port left in {_SERVER_PORTS}")


def run_metadata_keys() -> set[str]:
    """The keys `metadata.json` carries about the run, whichever job wrote it."""
    from vda.platform.video.metadata import run_metadata

    fields = (
        "model_size",
        "metric",
        "checkpoint",
        "checkpoint_sha256",
        "input_size",
        "precision",
        "device",
        "max_res",
        "target_fps",
        "max_len",
        "window",
    )
    return set(run_metadata(**dict.fromkeys(fields, 0), speed={}, alignments=[]))


def short_clip_archive(root, count: int, model_seed: int, digits: int = 1):
    """`root/videos/clip<i>.mp4`: `count` real 6-frame clips of 28 x 42, and `root/tiny.ckpt`:
    the small local archive the bulk job's scenario tests run on."""
    from videos import moving_frames, write_mp4v

    from vda.model import save_checkpoint

    (root / "videos").mkdir()
    for i in range(count):
        name = f"clip{i:0{digits}d}.mp4"
        write_mp4v(root / "videos" / name, moving_frames(6, 28, 42, seed=i), fps=10)
    save_checkpoint(tiny_model(seed=model_seed), root / "tiny.ckpt")
    return root
