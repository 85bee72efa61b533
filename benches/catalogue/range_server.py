#!/usr/bin/env python3
"""A static file server that answers HTTP range requests (GDAL's /vsicurl/ needs them;
Python's http.server does not) and counts the body bytes it sends.

    python3 range_server.py ROOT PORT COUNT_FILE

serves ROOT on 127.0.0.1:PORT and rewrites COUNT_FILE with "<requests> <bytes>" after every
request.
"""
import os
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

ROOT, PORT, COUNT = sys.argv[1], int(sys.argv[2]), sys.argv[3]
LOCK = threading.Lock()
STATE = {"requests": 0, "bytes": 0}


class RangeHandler(SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def __init__(self, *a, **k):
        super().__init__(*a, directory=ROOT, **k)

    def log_message(self, *a):
        pass

    def count(self, n):
        with LOCK:
            STATE["requests"] += 1
            STATE["bytes"] += n
            with open(COUNT, "w") as f:
                f.write(f"{STATE['requests']} {STATE['bytes']}\n")

    def send_file(self, head):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404)
            return
        size = os.path.getsize(path)
        lo, hi, status = 0, size - 1, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].split(",")[0].partition("-")
            if a:
                lo, hi = int(a), min(int(b), size - 1) if b else size - 1
            else:
                lo = max(0, size - int(b))
            status = 206
        self.send_response(status)
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Length", str(hi - lo + 1))
        if status == 206:
            self.send_header("Content-Range", f"bytes {lo}-{hi}/{size}")
        self.end_headers()
        if head:
            return
        with open(path, "rb") as f:
            f.seek(lo)
            data = f.read(hi - lo + 1)
        self.wfile.write(data)
        self.count(len(data))
        if os.environ.get("RANGE_LOG"):
            with LOCK, open(os.environ["RANGE_LOG"], "a") as f:
                f.write(f"{self.path} {lo} {hi}\n")

    def do_GET(self):
        self.send_file(False)

    def do_HEAD(self):
        self.send_file(True)


ThreadingHTTPServer(("127.0.0.1", PORT), RangeHandler).serve_forever()
