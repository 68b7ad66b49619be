"""A Hugging Face Hub stand-in on loopback: the download protocol `hf_hub_download` speaks.

What the client needs (huggingface_hub 2.x, `file_download.py`): a HEAD of
`/<repo>/resolve/<revision>/<file>` answered with the repository's commit
(`X-Repo-Commit`), the file's ETag (for LFS files the Hub sends the sha256 as
`X-Linked-Etag`) and its size; then a GET of the same URL for the bytes. Files
are served from memory; every request is logged, so tests count downloads.
"""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self) -> None:
        self.files: dict[tuple[str, str], bytes] = {}  # (repo id, file name) -> bytes
        self.requests: list[tuple[str, str]] = []  # (method, path)
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args) -> None:  # quiet
                pass

            def _answer(self, body: bool) -> None:
                hub.requests.append((self.command, self.path))
                found = hub._find(self.path)
                if found is None:
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = found
                digest = hashlib.sha256(data).hexdigest()
                self.send_response(200)
                self.send_header("X-Repo-Commit", COMMIT)
                self.send_header("X-Linked-Etag", f'"{digest}"')
                self.send_header("ETag", f'"{digest}"')
                self.send_header("X-Linked-Size", str(len(data)))
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _find(self, path: str) -> bytes | None:
        path = path.split("?", 1)[0].lstrip("/")
        if "/resolve/" not in path:
            return None
        repo, rest = path.split("/resolve/", 1)
        _, _, name = rest.partition("/")  # after the revision
        return self.files.get((repo, name))

    def downloads(self) -> int:
        """GETs of files (the client also asks the Hub's API for other things)."""
        return sum(1 for method, path in self.requests if method == "GET" and "/resolve/" in path)

    def __enter__(self) -> HubServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
