"""vda: Video Depth Anything at archive scale (https://arxiv.org/abs/2501.12375).

The jobs are the `vda` command; this is the Python API a script or a robot calls:

    import vda
    for result in vda.online(0, checkpoint="vits"):   # camera 0, the official online mode
        result.depth                                  # float32 (H, W), before the next frame

Names are imported on first use, so `import vda.model` stays as light as it is
(every `vda.*` import runs this file first).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["online"]

# Installed from a wheel, model/, platform/ and jobs/ sit inside this package's folder. In a
# checkout (the editable install of `make venv`) they are siblings of api/, and
# `vda.platform`, a namespace package (an __init__.py there would shadow the standard
# library's `platform` whenever the checkout is on sys.path), is found only through the
# checkout's root: search it too.
_checkout = Path(__file__).resolve().parent.parent
if (_checkout / "api" / "__init__.py").is_file() and (_checkout / "platform").is_dir():
    __path__.append(str(_checkout))


def __getattr__(name: str) -> Any:
    if name == "online":
        from vda.platform.online.stream import online

        return online
    raise AttributeError(f"module 'vda' has no attribute {name!r}")
