"""Raw body reads for geventhttpclient responses: return bytes as soon as they arrive.

Used by the Locust bridge on its hot path; it imports nothing from gevent or locust itself
(the response object it reads belongs to FastHttpUser's client).
"""

from __future__ import annotations

READ_BLOCK_BYTES = 65536


def read_some(raw) -> bytes:
    """Whatever body bytes have arrived (at least one byte, b'' at end of message).

    geventhttpclient's public `read(n)` blocks until n bytes or the end, which would delay every
    chunk of a stream; this reads one socket block at a time and returns as soon as the parser
    has body bytes, so the timestamp taken after it is when the token arrived.
    """
    buf = getattr(raw, "_body_buffer", None)
    if buf is None:  # unknown geventhttpclient internals: fall back to one SSE event at a time
        return raw.readline(b"\n\n")
    while not buf:
        if raw.message_complete or raw._sock is None:
            return b""
        data = raw._sock.recv(READ_BLOCK_BYTES)
        if not data:
            raise ConnectionResetError("connection closed mid-stream")
        raw.feed(data)
    out = bytes(buf)
    del buf[:]
    return out
