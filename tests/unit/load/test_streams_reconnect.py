"""A request whose kept-alive connection the server had closed is re-sent and counted, not recorded as an error.

Pure accounting on the accumulator (closed_before_response, may_resend, resend), then the real client
(geventhttpclient, as Locust's FastHttpUser uses it) against the fake llama-server closing its connections.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.backends.launched import free_port
from harness.load.sse import SSEParser
from harness.load.failures import MAX_RECONNECTS, closed_before_response
from harness.load.streams import OpenAIChatStream
from tests.procs import wait_until

FAKE = Path(__file__).resolve().parents[2] / "fakes" / "llama-server"


class HTTPParseError(Exception):  # named like geventhttpclient's: classified by name
    pass


class HTTPConnectionClosed(HTTPParseError):
    pass


class RetriesExceeded(ConnectionError):
    def __init__(self, original):
        super().__init__("URL http://x: 0")
        self.original = original


@pytest.mark.parametrize("exc,status,want", [
    (HTTPConnectionClosed("connection closed."), 0, True),  # the stale kept-alive connection
    (ConnectionResetError(104, "Connection reset by peer"), 0, True),
    (RetriesExceeded(BrokenPipeError(32, "Broken pipe")), 0, True),  # EPIPE on send, wrapped by urlopen
    (HTTPConnectionClosed("connection closed."), 200, False),  # an answer had begun: never re-sent
    (ConnectionRefusedError(111, "Connection refused"), 0, False),  # no server: an error, not a reconnect
    (RetriesExceeded(TimeoutError("timed out")), 0, False),
    (HTTPParseError("Expected HTTP/"), 0, False),  # garbage on the port
    (None, 0, False),
])
def test_only_a_connection_closed_before_any_answer_is_re_sent(exc, status, want):
    assert closed_before_response(status, exc) is want


def acc(**kw):
    return OpenAIChatStream("u-7", sent_s=100.0, requested_output_tokens=2, forced_length=True,
                            scheduled_s=99.5, sent_unix_s=1.7e9, user="u", **kw)


CHAT = (b'data: {"choices":[{"index":0,"delta":{"content":"a"},"finish_reason":null}]}\n\n'
        b'data: {"choices":[{"index":0,"delta":{"content":"b"},"finish_reason":"length"}],'
        b'"usage":{"prompt_tokens":5,"completion_tokens":2}}\n\n'
        b"data: [DONE]\n\n")


def test_a_re_sent_request_is_one_ok_record_timed_from_the_new_send():
    a = acc()
    closed = HTTPConnectionClosed("connection closed.")
    assert a.may_resend(0, closed)
    a.resend(100.002, 1.7e9 + 0.002)
    a.feed_block(SSEParser(), CHAT, 100.050)
    rec = a.finish(100.060, 200)
    assert rec.ok and rec.error_type is None and rec.output_tokens == 2
    assert (rec.request_id, rec.user, rec.scheduled_s) == ("u-7", "u", 99.5)  # the schedule time stays
    assert rec.sent_s == 100.002 and rec.ttft_s == pytest.approx(0.048) and rec.e2e_s == pytest.approx(0.058)
    assert json.loads(rec.to_json())["reconnects"] == 1  # counted on the record, in requests.jsonl


def test_re_sends_are_bounded_then_the_failure_is_recorded():
    a, closed = acc(), HTTPConnectionClosed("connection closed.")
    for _ in range(MAX_RECONNECTS):
        assert a.may_resend(0, closed)
        a.resend(100.0)
    assert not a.may_resend(0, closed)
    rec = a.finish(100.1, 0, ("connect", "HTTPConnectionClosed: connection closed."))
    assert not rec.ok and rec.error_type == "connect" and rec.reconnects == MAX_RECONNECTS


def test_nothing_is_re_sent_once_tokens_arrived():
    a = acc()
    a.feed_block(SSEParser(), CHAT[:CHAT.index(b"\n\n") + 2], 100.01)
    assert not a.may_resend(0, ConnectionResetError("connection closed mid-stream"))


# The client side as Locust's FastHttpUser has it: geventhttpclient's UserAgent and connection pool,
# in a child process so this test process never imports gevent.
CLIENT = r"""
import json, sys
from geventhttpclient.useragent import UserAgent
from harness.load.failures import closed_before_response
url = sys.argv[1]
ua = UserAgent(concurrency=1)
body = json.dumps({"model": "m", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 2, "stream": True})
out = []
for i in range(3):
    try:
        r = ua.urlopen(url + "/v1/chat/completions", method="POST", payload=body,
                       headers={"Content-Type": "application/json"})
        data = r.read()
        out.append({"status": r.status_code, "done": data.rstrip().endswith(b"[DONE]")})
    except Exception as exc:
        out.append({"status": 0, "error": type(exc).__name__, "resend": closed_before_response(0, exc)})
print(json.dumps(out))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="the fake server and /proc are Linux-only here")
def test_the_real_client_meets_a_stale_connection_and_a_re_send_on_a_new_one_succeeds(tmp_path):
    (tmp_path / "m.gguf").write_bytes(b"GGUF")
    port = free_port()
    env = {**os.environ, "FAKE_CLOSE": "on_next_request", "FAKE_LOAD_S": "0", "FAKE_TTFT_MS": "1", "FAKE_ITL_MS": "1"}
    server = subprocess.Popen([sys.executable, str(FAKE), "-m", str(tmp_path / "m.gguf"), "--port", str(port)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        from harness.backends.probe import http_get

        assert wait_until(lambda: http_get(f"http://127.0.0.1:{port}/health")[0] == 200, timeout_s=15)
        res = subprocess.run([sys.executable, "-c", CLIENT, f"http://127.0.0.1:{port}"], capture_output=True,
                             text=True, timeout=60, cwd=Path(__file__).resolve().parents[3])
        assert res.returncode == 0, res.stderr[-2000:]
        first, stale, fresh = json.loads(res.stdout)
    finally:
        server.terminate()
        server.wait(timeout=10)
    assert first == {"status": 200, "done": True}
    # Without a re-send this is the error llama-server runs showed: "connect: HTTPConnectionClosed".
    assert stale == {"status": 0, "error": "HTTPConnectionClosed", "resend": True}
    assert fresh == {"status": 200, "done": True}  # the pool dropped the closed connection: a new one answers
