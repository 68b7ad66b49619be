"""vda: Video Depth Anything at archive scale (https://arxiv.org/abs/2501.12375).

The jobs are the `vda` command; this is the Python API a script or a robot calls:

    import vda
    for result in vda.online(0, checkpoint="vits"):   # camera 0, the official online mode
        result.depth                                  # float32 (H, W), before the next frame

Names are imported on first use, so `import vda.model` stays as light as it is
(every `vda.*` import runs this file first).

This folder is the package root. Its `model`, `platform` and `jobs` are links to the
repository's top-level folders of those names, so a checkout imports exactly as the
installed wheel (where they are plain folders): docs/architecture.md says why.
"""

from __future__ import annotations

from typing import Any

__all__ = ["online"]


def __getattr__(name: str) -> Any:
    if name == "online":
        from vda.platform.online.stream import online

        return online
    raise AttributeError(f"module 'vda' has no attribute {name!r}")
