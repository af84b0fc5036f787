"""Shared by the fake `vllm` and `text-generation-launcher`: FAKE_MODE behaviour and a tiny GET server.

FAKE_MODE=ok|crash|hang|never_ready|crash_after_ready (see tests/unit/backends/test_vllm_tgi.py).
Not executable and underscore-named, so putting tests/fakes on PATH never shadows a real program.
"""

import http.server
import json
import os
import sys
import threading
import time

MODES = ("ok", "crash", "hang", "never_ready", "crash_after_ready")


def log(prog, msg):
    print(f"{prog}: {msg}", flush=True)


def serve(prog, host, port, routes, unhealthy=(503, b""), guard=lambda path, headers: True):
    """Run FAKE_MODE; `routes` maps a GET path to (status, body bytes or JSON-able object)."""
    mode = os.environ.get("FAKE_MODE", "ok")
    if mode not in MODES:
        sys.exit(f"{prog}: unknown FAKE_MODE {mode!r} (one of {', '.join(MODES)})")
    if mode == "crash":
        log(prog, "loading weights ...")
        print("torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 2.00 GiB (fake)", flush=True)
        sys.exit(1)
    if mode == "hang":
        log(prog, "loading weights ... (fake: never binds)")
        while True:
            time.sleep(3600)

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            path = self.path.split("?", 1)[0]
            if path == "/health":
                status, body = (200, b"") if mode != "never_ready" else unhealthy
            elif path not in routes:
                status, body = 404, {"error": "not found"}
            elif not guard(path, self.headers):
                status, body = 401, {"error": "Unauthorized"}
            else:
                status, body = routes[path]
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    srv = http.server.ThreadingHTTPServer((host, port), Handler)
    log(prog, f"listening on http://{host}:{srv.server_port} (mode {mode})")
    if mode == "crash_after_ready":
        def die():
            print("RuntimeError: engine core died unexpectedly (fake)", flush=True)
            os._exit(1)

        threading.Timer(1.0, die).start()
    srv.serve_forever()
