"""A local HTTP server on 127.0.0.1 for the prepare tests: a mirror folder with Range support and
planted faults, and (as an HTTP proxy) the sample corpus' web images with its planted download errors.

Faults, per mirror path: ``drop`` (send half the body, then close the connection: once per path),
``corrupt`` (flip bytes in the middle: once per path), ``missing`` (404). Web URLs (absolute-form
request lines, as urllib sends them to a proxy) are answered from ``images``: url -> JPEG bytes, or
an HTTP status for the sample corpus' planted failures (404 / 410) or ``timeout`` (no answer).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Faults:
    drop: set[str] = field(default_factory=set)
    corrupt: set[str] = field(default_factory=set)
    missing: set[str] = field(default_factory=set)
    served: list[tuple[str, str | None, int]] = field(default_factory=list)  # (path, Range, status)


class MirrorServer:
    def __init__(self, folder: Path, images: dict[str, Any] | None = None, stall_s: float = 3.0) -> None:
        self.folder, self.images, self.faults, self.stall_s = folder, images or {}, Faults(), stall_s
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                if self.path.startswith("http://"):
                    return outer._web(self)
                return outer._file(self)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> MirrorServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _file(self, h: BaseHTTPRequestHandler) -> None:
        from urllib.parse import unquote

        rel = unquote(h.path.lstrip("/"))
        rng = h.headers.get("Range")
        p = self.folder / rel
        if rel in self.faults.missing or not p.is_file():
            self.faults.served.append((rel, rng, 404))
            h.send_error(404, "Not Found")
            return
        data = p.read_bytes()
        if rel in self.faults.corrupt:
            self.faults.corrupt.discard(rel)
            mid = len(data) // 2
            data = data[:mid] + bytes(b ^ 0xFF for b in data[mid:mid + 64]) + data[mid + 64:]
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        status = 206 if rng else 200
        self.faults.served.append((rel, rng, status))
        h.send_response(status)
        h.send_header("Content-Length", str(len(data) - start))
        h.send_header("Accept-Ranges", "bytes")
        if rng:
            h.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        h.end_headers()
        body = data[start:]
        if rel in self.faults.drop:
            self.faults.drop.discard(rel)
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            h.connection.shutdown(2)
            return
        h.wfile.write(body)

    def _web(self, h: BaseHTTPRequestHandler) -> None:
        answer = self.images.get(h.path)
        if answer is None or isinstance(answer, int):
            code = answer or 404
            h.send_error(code, {404: "Not Found", 410: "Gone"}.get(code))
            return
        if answer == "timeout":
            time.sleep(self.stall_s)
            h.close_connection = True
            return
        h.send_response(200)
        h.send_header("Content-Type", "image/jpeg")
        h.send_header("Content-Length", str(len(answer)))
        h.end_headers()
        h.wfile.write(answer)


def web_answers(corpus: Path) -> dict[str, Any]:
    """What the proxy answers per web URL of the sample corpus: the JPEG its img2dataset imitation holds
    for a success row, else the planted failure (404, 410, or no answer for a timeout)."""
    import tarfile

    import pyarrow.parquet as pq

    out: dict[str, Any] = {}
    for src in ("cc3m", "cc12m", "sbu"):
        d = corpus / src / "images"
        if not d.is_dir():
            continue
        with tarfile.open(d / "00000.tar") as t:
            jpg = {m.name.split(".")[0]: t.extractfile(m).read() for m in t if m.name.endswith(".jpg")}  # type: ignore[union-attr]
        for r in pq.read_table(d / "00000.parquet").to_pylist():
            msg = r["error_message"] or ""
            out[r["url"]] = (jpg[r["key"]] if r["status"] == "success" else 404 if "404" in msg
                             else 410 if "410" in msg else "timeout")
    return out
