"""The latest depth map as an MJPEG stream over HTTP: a live view for a machine with no screen.

Any browser, VLC or `ffplay` shows `http://HOST:PORT/` (multipart/x-mixed-replace,
one JPEG per depth map); `/frame.jpg` is the latest single frame. A viewer that
falls behind skips to the newest map rather than queueing old ones, as the
model's input does. The colour range starts at the first map's 1st / 99th
percentiles and only ever widens, as the preview videos' does, so the view
does not flicker.
"""

from __future__ import annotations

import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from vda.platform.core.config import ConfigError
from vda.platform.video.writers import grayscale, inferno

BOUNDARY = "vdaframe"


class MjpegPreview:
    """Publish depth maps with `publish(depth)`; viewers connect to `url`."""

    def __init__(
        self, port: int, host: str = "127.0.0.1", quality: int = 80, metric: bool = False
    ) -> None:
        """`metric`: the maps are depth in metres (near is small), not disparity; the
        colours are turned round so that near is bright either way."""
        self._quality = quality
        self._metric = metric
        self._range: tuple[float, float] | None = None
        self._jpeg: bytes | None = None
        self._sequence = 0
        self._changed = threading.Condition()
        self._closing = False
        preview = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:  # no per-request lines on stderr
                pass

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/frame.jpg":
                    preview._send_frame(self)
                elif self.path.split("?")[0] in ("/", "/stream.mjpg"):
                    preview._send_stream(self)
                else:
                    self.send_error(HTTPStatus.NOT_FOUND)

        try:
            self._server = ThreadingHTTPServer((host, port), Handler)
        except OSError as error:
            raise ConfigError(f"cannot serve the preview on {host}:{port}: {error}") from None
        self._server.daemon_threads = True
        self.host, self.port = self._server.server_address[:2]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def publish(self, depth: np.ndarray) -> None:
        sample = depth[::4, ::4]
        if self._range is None:
            low, high = map(float, np.percentile(sample, [1, 99]))
        else:
            low, high = self._range
            high = max(high, float(np.percentile(sample, 99)))  # widen only: no flicker
        high = high if high > low else low + 1e-6
        self._range = (low, high)
        gray = grayscale(depth, low, high)
        if self._metric:
            gray = 255 - gray
        _, encoded = cv2.imencode(".jpg", inferno(gray), [cv2.IMWRITE_JPEG_QUALITY, self._quality])
        with self._changed:
            self._jpeg = encoded.tobytes()
            self._sequence += 1
            self._changed.notify_all()

    def _send_frame(self, handler: BaseHTTPRequestHandler) -> None:
        jpeg = self._jpeg
        if jpeg is None:
            handler.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no depth map yet")
            return
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", "image/jpeg")
        handler.send_header("Content-Length", str(len(jpeg)))
        handler.end_headers()
        handler.wfile.write(jpeg)

    def _send_stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(HTTPStatus.OK)
        handler.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        handler.send_header("Cache-Control", "no-cache")
        handler.end_headers()
        seen = -1
        try:
            while True:
                with self._changed:
                    while self._sequence == seen and not self._closing:
                        self._changed.wait(timeout=1.0)
                    if self._closing:
                        return
                    jpeg, seen = self._jpeg, self._sequence
                if jpeg is None:
                    continue
                handler.wfile.write(
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(jpeg)}\r\n\r\n".encode()
                    + jpeg
                    + b"\r\n"
                )
                handler.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):  # the viewer left
            return

    def close(self) -> None:
        with self._changed:
            self._closing = True
            self._changed.notify_all()
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> MjpegPreview:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
