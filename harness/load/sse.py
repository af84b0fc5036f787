"""SSE framing: split a byte stream into event payloads, without per-line overhead.

Pure and incremental (no I/O, no gevent): the Locust bridge feeds it the blocks it reads and
stamps each returned payload with the time the block arrived. Handles vLLM's `data: ` (with a
space) and TGI's `data:` (without), `\\r\\n` line endings, and `:` keep-alive comments.
"""

from __future__ import annotations

DONE = b"[DONE]"


class SSEParser:
    """Incremental parser: `feed(block)` returns the `data` payloads of the events it completed."""

    __slots__ = ("_buf",)

    def __init__(self) -> None:
        self._buf = b""

    def feed(self, block: bytes) -> list[bytes]:
        if not block:
            return []
        if b"\r" in block:
            # Rare (neither vLLM nor TGI send \r\n); normalise once per block rather than per line.
            block = block.replace(b"\r\n", b"\n")
        if not self._buf and block[-2:] == b"\n\n" and block[:5] == b"data:" and b"\n" not in block[:-2]:
            # The usual case while streaming: exactly one single-line event per read.
            return [block[6:-2] if block[5:6] == b" " else block[5:-2]]
        buf = self._buf + block if self._buf else block
        if b"\n\n" not in buf:
            self._buf = buf
            return []
        parts = buf.split(b"\n\n")
        self._buf = parts.pop()  # the tail after the last blank line is an incomplete event
        out = []
        for ev in parts:
            payload = event_data(ev)
            if payload is not None:
                out.append(payload)
        return out

    @property
    def pending(self) -> bytes:
        """Bytes received that do not (yet) form a complete event."""
        return self._buf

    def close(self) -> list[bytes]:
        """End of stream: a final event without its blank line is still delivered."""
        tail, self._buf = self._buf.strip(b"\n"), b""
        if not tail:
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
