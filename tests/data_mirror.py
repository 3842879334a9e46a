"""A real HTTP server on 127.0.0.1 that serves the datasets' published files, built from the copies in
../shared/data, at the paths FBREC_DATA_MIRROR maps their URLs to (`/<host>/<path>`), with faults on demand.

Run as a script it serves until killed and prints its base URL (for tests that run fbrec in another process)."""

from __future__ import annotations

import io
import sys
import threading
import time
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from fbrec.data.sources import SOURCES


def published_files(shared: Path) -> dict[str, bytes]:
    """Mirror path -> the bytes the publisher serves, rebuilt from ../shared/data: a zip where the publisher ships
    one, the Taobao sample with a truncated last user as upstream has it."""
    files: dict[str, bytes] = {}
    for src in SOURCES.values():
        for download in src.downloads:
            parts = urlsplit(download.url)
            path = f"/{parts.netloc}{parts.path}"
            if any(download.files.values()):
                buffer = io.BytesIO()
                with zipfile.ZipFile(buffer, "w") as archive:
                    for rel, member in download.files.items():
                        archive.writestr(member, (shared / src.name / rel).read_bytes())
                files[path] = buffer.getvalue()
            else:
                (rel,) = download.files
                body = (shared / src.name / rel).read_bytes()
                if download.derive is not None:                  # upstream: a byte prefix cut inside a user
                    body += b"100370,1968385,1875258,pv,1511544070\n100370,1968385,1875258,pv"
                files[path] = body
    return files


class Mirror:
    """files: path -> bytes. faults: path -> one of "404", "500", "cut" (half the body, then close, every time),
    "cut_once" (the first request only), "stall", "no_range" (ignores Range), "redirect" (302 to /moved/<path>)."""

    def __init__(self, files: dict[str, bytes]):
        self.files, self.faults, self.requests = dict(files), {}, []
        mirror = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                mirror.requests.append((self.path, self.headers.get("Range")))
                path = self.path.removeprefix("/moved")
                fault = mirror.faults.get(path) if not self.path.startswith("/moved") else None
                if fault == "redirect":
                    self.send_response(302)
                    self.send_header("Location", "/moved" + path)
                    self.end_headers()
                    return
                if fault in ("404", "500") or path not in mirror.files:
                    self.send_error(int(fault) if fault in ("404", "500") else 404)
                    return
                body, start = mirror.files[path], 0
                if self.headers.get("Range") and fault != "no_range":
                    start = int(self.headers["Range"].removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416)
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                if fault == "stall":
                    time.sleep(5)
                    return
                if fault in ("cut", "cut_once"):
                    if fault == "cut_once":
                        mirror.faults.pop(path)
                    self.wfile.write(body[start:start + (len(body) - start) // 2])
                    self.close_connection = True
                    return
                self.wfile.write(body[start:])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return f"/{parts.netloc}{parts.path}"


if __name__ == "__main__":
    mirror = Mirror(published_files(Path(sys.argv[1])))
    print(mirror.url, flush=True)
    threading.Event().wait()
