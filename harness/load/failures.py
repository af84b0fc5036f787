"""Response failures: an HTTP status as an error class, an error body as one short line, and whether a
request failed only because the kept-alive connection it was written on had been closed (a re-send on a
new connection, not a server error). Used by the stream accumulators, the raw reader and the probes.
"""

from __future__ import annotations

import json

MAX_ERROR_CHARS = 300
# Re-sends of a request whose kept-alive connection proved closed before any answer (llama-server closes
# after every stream while announcing Keep-Alive); a pool may hold several such. Past this it is an error.
MAX_RECONNECTS = 3
_CLOSED_NAMES = frozenset({"HTTPConnectionClosed", "ConnectionResetError", "BrokenPipeError"})


def closed_before_response(status: int, exc: BaseException | None) -> bool:
    """Whether a request failed only because the server had closed the connection it was written on: no
    byte of an answer (status 0), the connection closed, reset or broken, no timeout. geventhttpclient never
    re-sends a POST (RFC 9110 9.2.2); its pool drops only connections whose FIN arrived before reuse."""
    seen = 0
    while exc is not None and seen < 6:  # the exception and what it wraps (RetriesExceeded.original, causes)
        names = {c.__name__ for c in type(exc).__mro__}
        if "Timeout" in names or isinstance(exc, TimeoutError):
            return False
        if status == 0 and names & _CLOSED_NAMES:
            return True
        exc, seen = getattr(exc, "original", None) or exc.__cause__ or exc.__context__, seen + 1
    return False


def classify_status(status: int) -> str | None:
    """HTTP status → error class (None for success)."""
    if status == 0:
        return "connect"
    if status == 429:
        return "overloaded_429"
    if status == 503:
        return "overloaded_503"
    if 400 <= status < 500:
        return "http_4xx"
    if status >= 500:
        return "http_5xx"
    return None


def error_message(body: bytes | str) -> str:
    """The human message inside a vLLM, TGI or plain-text error body, cut to one short line."""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    msg = text
    try:
        obj = json.loads(text)
        err = obj.get("error", obj) if isinstance(obj, dict) else obj
        if isinstance(err, dict):
            msg = str(err.get("message") or err)
        elif isinstance(err, str):
            msg = err
    except (ValueError, AttributeError):
        pass
    msg = " ".join(msg.split())
    return msg[:MAX_ERROR_CHARS]
