"""The MJPEG preview of `vda depth --online --serve-preview`, read by a real HTTP client."""

from __future__ import annotations

import http.client
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from vda.platform.online import MjpegPreview


def gradient(height: int = 48, width: int = 64, scale: float = 1.0) -> np.ndarray:
    return np.tile(np.linspace(0.0, scale, width, dtype=np.float32), (height, 1))


def decode(jpeg: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)


def read_part(response: http.client.HTTPResponse) -> bytes:
    """One part of a multipart/x-mixed-replace body: boundary, headers, then the JPEG."""
    assert response.readline().strip() == b"--vdaframe"
    headers = {}
    while line := response.readline().strip():
        name, _, value = line.decode().partition(":")
        headers[name.lower()] = value.strip()
    assert headers["content-type"] == "image/jpeg"
    jpeg = response.read(int(headers["content-length"]))
    assert response.readline() == b"\r\n"
    return jpeg


def test_latest_frame_and_the_stream_follow_published_depths():
    with MjpegPreview(port=0) as preview:
        with pytest.raises(urllib.error.HTTPError, match="503"):
            urllib.request.urlopen(preview.url + "frame.jpg", timeout=10)
        preview.publish(gradient())
        image = decode(urllib.request.urlopen(preview.url + "frame.jpg", timeout=10).read())
        assert image.shape == (48, 64, 3)
        # near (large disparity, right) is bright in the inferno map, far is dark
        assert image[:, -4:].mean() > image[:, :4].mean() + 100

        connection = http.client.HTTPConnection(preview.host, preview.port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.getheader("Content-Type") == "multipart/x-mixed-replace; boundary=vdaframe"
        first = decode(read_part(response))
        np.testing.assert_array_equal(first, image)
        preview.publish(gradient()[:, ::-1].copy())  # the next map: mirrored
        second = decode(read_part(response))
        assert second[:, :4].mean() > second[:, -4:].mean() + 100
        connection.close()
        assert urllib.request.urlopen(preview.url + "frame.jpg", timeout=10).status == 200
        with pytest.raises(urllib.error.HTTPError, match="404"):
            urllib.request.urlopen(preview.url + "elsewhere", timeout=10)


def test_colour_range_only_widens():
    """A later, deeper map widens the range; a map inside it does not narrow it again."""
    with MjpegPreview(port=0) as preview:
        preview.publish(gradient(scale=1.0))
        preview.publish(gradient(scale=4.0))
        wide = preview._range
        preview.publish(gradient(scale=1.0))
        assert preview._range == wide and wide[1] > 3.5


def test_a_taken_port_is_a_one_line_error():
    with MjpegPreview(port=0) as preview, pytest.raises(ValueError, match="cannot serve"):
        MjpegPreview(port=preview.port)
