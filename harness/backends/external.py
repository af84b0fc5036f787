"""An already-running server (`--target URL` or `backend.type: external`): nothing launched.

Readiness means /health answers 200 (or, for servers without it, /v1/models answers);
an unreachable URL is a one-line BackendError naming the URL and the fix.
"""

from __future__ import annotations

import os

from harness.backends.base import Backend, BackendError
from harness.backends.probe import http_get, served_model
from harness.config import ExternalBackend as ExternalConfig


class ExternalServer(Backend):
    def __init__(self, cfg: ExternalConfig):
        self.cfg = cfg
        self.url = cfg.url
        self.model = cfg.model

    def _headers(self) -> dict:
        key = os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def start(self) -> None:
        if self.cfg.api_key_env and not os.environ.get(self.cfg.api_key_env):
            raise BackendError(f"api_key_env names ${self.cfg.api_key_env}, which is not set: export it or drop api_key_env")

    def wait_ready(self) -> None:
        status, body = http_get(f"{self.url}/health", timeout_s=self.cfg.startup_timeout_s, headers=self._headers())
        if status == 0:
            raise BackendError(f"cannot reach {self.url}: {body.decode(errors='replace')} "
                               "(is the server running? check the --target URL)")
        if status != 200:
            status2, _ = http_get(f"{self.url}/v1/models", timeout_s=self.cfg.startup_timeout_s, headers=self._headers())
            if status2 != 200:
                raise BackendError(f"{self.url} is not healthy: /health answered HTTP {status}, "
                                   f"/v1/models HTTP {status2}")
        if self.model is None:
            self.model = served_model(self.url, headers=self._headers())

    def stop(self) -> None:
        pass  # not ours to stop

    def describe(self) -> dict:
        return {"type": "external", "url": self.url, "model": self.model, "simulated": False,
                "gpu": None, "gpu_count": None, "command": None}
