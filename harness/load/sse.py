"""SSE framing: split a byte stream into event payloads, without per-line overhead.

Pure and incremental (no I/O, no gevent): the Locust bridge feeds it the blocks it reads and
stamps each returned payload with the time the block arrived. Handles vLLM's `data: ` (with a
space) and TGI's `data:` (without), `\\r\\n` line endings, and `:` keep-alive comments.
"""

from __future__ import annotations

DONE = b"[DONE]"
# The largest incomplete event kept in memory. A streamed chunk is a few hundred bytes (a few KiB
# with logprobs); 8 MiB leaves room for any honest one, and bounds what a broken or hostile
# server can make the client buffer per request (one 100 MB event took Locust to GBs).
MAX_EVENT_BYTES = 8 * 1024 * 1024


class EventTooLarge(ValueError):
    """More than the parser's maximum of one event arrived without its end (a blank line)."""


class SSEParser:
    """Incremental parser: `feed(block)` returns the `data` payloads of the events it completed.

    Linear in the bytes fed: the incomplete tail grows in place (a bytearray) and each block is
    searched for the blank line once, never the whole tail again. Once the tail passes
    `max_event_bytes`, `error` says so and every later byte is dropped (memory stays bounded for
    a caller that does not look); the Locust client stops reading and closes the connection.
    """

    __slots__ = ("_buf", "max_event_bytes", "error")

    def __init__(self, max_event_bytes: int = MAX_EVENT_BYTES) -> None:
        self._buf = bytearray()  # bytes after the last blank line: an event not yet complete
        self.max_event_bytes = max_event_bytes
        self.error: str | None = None

    def feed(self, block: bytes) -> list[bytes]:
        if not block or self.error is not None:
            return []
        buf = self._buf
        if buf and buf[-1] == 13 and block[:1] == b"\n":
            del buf[-1:]  # a \r\n split across two reads: the \r waited at the end of the tail
        if b"\r" in block:
            # Rare (neither vLLM nor TGI send \r\n); normalise once per block rather than per line.
            block = block.replace(b"\r\n", b"\n")
        if not buf:
            if block[-2:] == b"\n\n" and block[:5] == b"data:" and b"\n" not in block[:-2]:
                # The usual case while streaming: exactly one single-line event per read.
                return [block[6:-2] if block[5:6] == b" " else block[5:-2]]
            if b"\n\n" not in block:
                self._keep(block)
                return []
            parts = block.split(b"\n\n")
        else:
            start = len(buf) - 1  # only a blank line that ends inside this block is new
            buf += block
            if buf.find(b"\n\n", start) < 0:
                self._check_size()
                return []
            parts = bytes(buf).split(b"\n\n")
            del buf[:]
        tail = parts.pop()  # the bytes after the last blank line are an incomplete event
        if tail:
            self._keep(tail)
        out = []
        for ev in parts:
            payload = event_data(ev)
            if payload is not None:
                out.append(payload)
        return out

    def _keep(self, tail: bytes) -> None:
        self._buf += tail
        self._check_size()

    def _check_size(self) -> None:
        n = len(self._buf)
        if n > self.max_event_bytes:
            del self._buf[:]  # nothing more of this stream is kept
            self.error = (f"an SSE event passed {self.max_event_bytes / 1048576:g} MiB ({n} bytes) without "
                          f"its end (a blank line): the server's stream is broken; the rest was not read")

    @property
    def pending(self) -> bytearray:
        """Bytes received that do not (yet) form a complete event (empty when none)."""
        return self._buf

    def close(self) -> list[bytes]:
        """End of stream: a final event without its blank line is still delivered."""
        tail = bytes(self._buf).rstrip(b"\r").strip(b"\n")
        del self._buf[:]
        if not tail or self.error is not None:
            return []
        payload = event_data(tail)
        return [payload] if payload is not None else []


def event_data(ev: bytes) -> bytes | None:
    """The `data` of one event (lines joined by \\n per the SSE spec); None for comment-only events."""
    if ev.startswith(b"data:") and b"\n" not in ev:  # fast path: one data line, the usual case
        return ev[6:] if ev[5:6] == b" " else ev[5:]
    lines = []
    for line in ev.split(b"\n"):
        if line.startswith(b"data:"):
            lines.append(line[6:] if line[5:6] == b" " else line[5:])
        # `:` comments (keep-alive), `event:`, `id:`, `retry:` carry no generated data: skipped.
    return b"\n".join(lines) if lines else None
