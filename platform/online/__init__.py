"""Online depth: frames from a camera, a stream or a file, one depth map each, as they come.

`stream` runs the online engine (`vda.model.inference.online`) over a live
source (`vda.platform.video.live`) and measures each frame's latency; it is
`vda.online()` and the core of `vda depth --online`. `preview` serves the
latest depth map as MJPEG over HTTP for machines without a screen.
"""

from .preview import MjpegPreview
from .stream import LatencyStats, OnlineDepth, OnlineStream, online

__all__ = ["LatencyStats", "MjpegPreview", "OnlineDepth", "OnlineStream", "online"]
