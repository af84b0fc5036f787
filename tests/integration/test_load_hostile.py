"""The Locust user against a hostile server on 127.0.0.1: huge bodies, huge events, no headers,
broken encodings, truncated bodies and garbage instead of HTTP. Every request must end as one
record with the right error class, and the client's memory must not follow the response size.
"""

import json
import select
import socketserver
import threading
import time
from pathlib import Path

import pytest

from harness.config import parse_scenario, resolve_scenario
from harness.load.locust_runner import run_load
from harness.records import iter_records
from tests.procs import processes_matching

pytestmark = pytest.mark.integration

MIB = 1024 * 1024
HUGE_BYTES = 100 * MIB  # what the hostile modes offer; the client must read only a bounded part
TIMEOUT_S = 2.0  # the scenario's load.timeout_s: "no headers" ends here

# mode -> (error_type, status) each record of that mode must end with
ANY_STATUS = None
EXPECTED = {
    "ok": (None, 200),
    "huge_500": ("http_5xx", 500),
    "huge_200_json": ("malformed_stream", 200),
    "huge_event": ("malformed_stream", 200),
    "no_headers": ("timeout", 0),
    "bad_utf8_400": ("http_4xx", 400),
    "close_mid_stream": ("stream_error", 200),
    "short_content_length": ("stream_error", 200),
    "stalled_body": ("timeout", 200),
    "bad_chunk": ("protocol_error", ANY_STATUS),  # 0 when the broken chunk came with the headers
    "garbage": ("protocol_error", 0),
}
MODES = list(EXPECTED)


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def _event(text: str) -> bytes:
    obj = {"id": "c", "object": "chat.completion.chunk", "choices": [
        {"index": 0, "delta": {"content": text}, "finish_reason": None}]}
    return b"data: " + json.dumps(obj).encode() + b"\n\n"


class _Handler(socketserver.BaseRequestHandler):
    def handle(self):
        sock = self.request
        buf = b""
        while True:  # keep-alive: one request after another until a mode closes the connection
            while b"\r\n\r\n" not in buf:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            head, buf = buf.split(b"\r\n\r\n", 1)
            headers = {}
            for line in head.split(b"\r\n")[1:]:
                k, _, v = line.partition(b":")
                headers[k.strip().lower()] = v.strip().decode()
            need = int(headers.get(b"content-length", "0"))
            while len(buf) < need:
                buf += sock.recv(65536)
            buf = buf[need:]
            mode = self.server.next_mode(headers.get(b"x-request-id", "?"))
            try:
                if not getattr(self, mode)(sock):
                    return
            except OSError:  # the client closed its end: what a bounded reader should do
                return

    @staticmethod
    def _flood(sock, head: bytes, filler: bytes) -> bool:
        sock.sendall(head)
        block = filler * (MIB // len(filler))
        for _ in range(HUGE_BYTES // len(block)):
            sock.sendall(block)
        return False

    def ok(self, sock):
        body = b"".join(_chunk(e) for e in (_event("Hi"), _event(" there"), b"data: [DONE]\n\n"))
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + body + b"0\r\n\r\n")
        return True

    def huge_500(self, sock):
        return self._flood(sock, b"HTTP/1.1 500 Internal Server Error\r\nContent-Type: application/json\r\n"
                           b"Content-Length: %d\r\n\r\n{\"error\": {\"message\": \"boom " % (HUGE_BYTES + 40), b"x" * 64)

    def huge_200_json(self, sock):
        return self._flood(sock, b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                           b"{\"choices\": [{\"text\": \"" % (HUGE_BYTES + 30), b"y" * 64)

    def huge_event(self, sock):
        return self._flood(sock, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n"
                           b"data: {\"choices\": [{\"delta\": {\"content\": \"", b"z" * 64)

    def no_headers(self, sock):
        select.select([sock], [], [], TIMEOUT_S * 5)  # until the client gives up and closes
        return False

    def bad_utf8_400(self, sock):
        body = b'\xff\xfe{"error": "bad \xff request"}'
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body), body))
        return True

    def close_mid_stream(self, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + _chunk(_event("Hi")) + _chunk(_event(" th")))
        return False

    def short_content_length(self, sock):
        body = _event("Hi") + _event(" th")
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body) + 5000, body))
        return False

    def stalled_body(self, sock):
        body = _event("Hi")
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n%s"
                     % (len(body) + 5000, body))
        select.select([sock], [], [], TIMEOUT_S * 5)  # the rest never comes; the client times out
        return False

    def bad_chunk(self, sock):
        sock.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     + _chunk(_event("Hi")) + b"zz-not-a-size\r\n" + _event(" th"))
        return False

    def garbage(self, sock):
        sock.sendall(b"SSH-2.0-OpenSSH_9.6\r\n\x00\x01 not http at all\r\n\r\n")
        return False


class HostileServer(socketserver.ThreadingTCPServer):
    """Serves MODES in turn, one per request, and remembers which request id got which mode."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), _Handler)
        self.lock = threading.Lock()
        self.served: dict[str, str] = {}

    def next_mode(self, rid: str) -> str:
        with self.lock:
            mode = MODES[len(self.served) % len(MODES)]
            self.served[rid] = mode
            return mode

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


def _peak_rss_bytes(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def test_every_hostile_response_is_one_record_with_its_class_and_memory_stays_bounded(tmp_path):
    srv = HostileServer()
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    scn = resolve_scenario(parse_scenario({
        "name": "hostile", "backend": {"type": "external", "url": srv.url, "model": "m"},
        "load": {"api": "openai-chat", "users": 3, "duration_s": 20, "timeout_s": TIMEOUT_S,
                 "max_requests": 2 * len(MODES)},
        "workload": {"prompt_tokens": 8, "output_tokens": 2}}))
    peak = {"rss": 0}
    done = threading.Event()

    def watch():  # VmHWM only grows: the last reading before Locust exits is its peak so far
        while not done.is_set():
            for pid in processes_matching("locust", str(tmp_path)):
                peak["rss"] = max(peak["rss"], _peak_rss_bytes(pid) or 0)
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        outcome = run_load(scn, srv.url, "m", tmp_path, echo=lambda s: None)
    finally:
        done.set()
        watcher.join(5)
        srv.shutdown()
        srv.server_close()
    recs = list(iter_records(tmp_path / "requests.jsonl"))
    assert outcome.reason == "completed", (outcome, (tmp_path / "locust.log").read_text()[-3000:])
    assert "Traceback" not in (tmp_path / "locust.log").read_text()
    assert len(recs) == 2 * len(MODES)
    by_mode = {}
    for r in recs:
        mode = srv.served[r.request_id]
        by_mode.setdefault(mode, []).append(r)
        kind, status = EXPECTED[mode]
        assert r.error_type == kind and status in (r.status, ANY_STATUS), (mode, r.error_type, r.status, r.error)
        assert r.ok == (mode == "ok")
        if not r.ok:
            assert r.error and "\n" not in r.error and len(r.error) <= 300, (mode, r.error)
    assert set(by_mode) == set(MODES)
    for r in by_mode["huge_500"]:
        assert r.error.startswith("HTTP 500: ") and "boom" in r.error
    for r in by_mode["bad_utf8_400"]:
        assert r.error.startswith("HTTP 400: ") and "bad" in r.error and "\ufffd" in r.error
    for r in by_mode["huge_event"]:
        assert "MiB" in r.error
    for r in by_mode["huge_200_json"]:
        assert "application/json" in r.error
    for r in by_mode["close_mid_stream"] + by_mode["short_content_length"]:
        assert r.ttft_s is not None and "closed" in r.error  # what arrived before the cut is kept
    for r in by_mode["no_headers"] + by_mode["stalled_body"]:
        assert TIMEOUT_S * 0.9 <= r.e2e_s < TIMEOUT_S * 3
    for r in by_mode["stalled_body"]:
        assert r.ttft_s is not None  # the first event was measured before the failure
    for r in by_mode["bad_chunk"] + by_mode["garbage"]:
        assert "not valid HTTP" in r.error
    # Locust itself is ~90 MB; each huge mode offered 100 MB twice (a client that buffered one
    # 500 body peaked at 205 MB, one that parsed the huge event never finished it).
    assert 0 < peak["rss"] < 160 * MIB, peak
