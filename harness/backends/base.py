"""Backend interface: start, wait until ready, URL, logs, stop — used as a context manager.

Every backend (sim, external; vLLM and TGI later) implements this one seam, so the runner never
knows which server it is talking to. Failures raise BackendError with one line naming the fix.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class BackendError(Exception):
    """The server could not be started or reached; the message says what to do."""


class Backend(ABC):
    """A server the load generator can target at `url`, serving `model`."""

    url: str | None = None
    model: str | None = None

    @abstractmethod
    def start(self) -> None:
        """Launch the server (no-op for a server someone else runs)."""

    @abstractmethod
    def wait_ready(self) -> None:
        """Block until the server answers requests, or raise BackendError."""

    @abstractmethod
    def stop(self) -> None:
        """Tear down whatever start() created. Safe to call twice."""

    def describe(self) -> dict[str, Any]:
        """Run metadata: type, command line (API keys redacted), url, model, GPU facts."""
        return {"type": "unknown", "url": self.url, "model": self.model}

    def poll_crash(self) -> str | None:
        """A message if a launched server has died since it became ready, else None."""
        return None

    def __enter__(self) -> "Backend":
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
