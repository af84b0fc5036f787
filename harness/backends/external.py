"""An already-running server (`--target URL` or `backend.type: external`): nothing launched.

Readiness means /health answers 200 (or, for servers without it, /v1/models answers) and an
authenticated route accepts our key; during the run `poll_crash` probes /health every few seconds
so a target that stops answering ends the run as invalid, like a launched server that dies.
"""

from __future__ import annotations

import os
import time

from harness.backends.base import Backend, BackendError
from harness.backends.probe import http_get, served_model
from harness.config import ExternalBackend as ExternalConfig

AUTH_STATUSES = (401, 403)
HEALTH_EVERY_S = 2.0  # how often a running target is probed during the load
HEALTH_TIMEOUT_S = 2.0
GONE_AFTER_FAILURES = 3  # consecutive probes with no HTTP answer at all (refused, reset, timed out)


def auth_hint(api_key_env: str | None) -> str:
    if api_key_env:
        return f"the key in ${api_key_env} was refused: check it is the server's key"
    return "the server needs an API key: export it in a variable and pass --api-key-env NAME"


class ExternalServer(Backend):
    def __init__(self, cfg: ExternalConfig, clock=time.monotonic):
        self.cfg = cfg
        self.url = cfg.url
        self.model = cfg.model
        self._clock = clock
        self._next_probe_s = 0.0
        self._failures = 0
        self._last_failure = ""

    def _headers(self) -> dict:
        key = os.environ.get(self.cfg.api_key_env) if self.cfg.api_key_env else None
        return {"Authorization": f"Bearer {key}"} if key else {}

    def start(self) -> None:
        if self.cfg.api_key_env and not os.environ.get(self.cfg.api_key_env):
            raise BackendError(f"api_key_env names ${self.cfg.api_key_env}, which is not set: export it or drop api_key_env")

    def wait_ready(self) -> None:
        timeout_s = self.cfg.startup_timeout_s
        status, body = http_get(f"{self.url}/health", timeout_s=timeout_s, headers=self._headers())
        if status == 0:
            raise BackendError(f"cannot reach {self.url}: {body.decode(errors='replace')} "
                               "(is the server running? check the --target URL)")
        # /health is open on vLLM and TGI even with a key set; /v1/models is guarded on both, so it
        # says whether the requests we are about to send would be accepted.
        status2, _ = http_get(f"{self.url}/v1/models", timeout_s=timeout_s, headers=self._headers())
        # TGI leaves /v1/models open and guards its generation routes and /tokenize: one tokenize
        # call (no generation) asks the same question there; servers without it answer 404.
        status3 = 0 if status2 in AUTH_STATUSES else http_get(
            f"{self.url}/tokenize", timeout_s=timeout_s, headers=self._headers(), json_body={"inputs": "ping"})[0]
        refused = next((s for s in (status, status2, status3) if s in AUTH_STATUSES), None)
        if refused:
            raise BackendError(f"{self.url} answered HTTP {refused} (unauthorized): {auth_hint(self.cfg.api_key_env)}")
        if status != 200 and status2 != 200:
            raise BackendError(f"{self.url} is not healthy: /health answered HTTP {status}, "
                               f"/v1/models HTTP {status2}")
        if self.model is None:
            self.model = served_model(self.url, headers=self._headers())
        self._next_probe_s = self._clock() + HEALTH_EVERY_S

    def poll_crash(self) -> str | None:
        """A message once the target has stopped answering (several probes in a row got no HTTP answer)."""
        now = self._clock()
        if now < self._next_probe_s:
            return None
        self._next_probe_s = now + HEALTH_EVERY_S
        status, body = http_get(f"{self.url}/health", timeout_s=HEALTH_TIMEOUT_S, headers=self._headers())
        if status:
            self._failures = 0  # any HTTP answer, even a 503 under load, means the server is there
            return None
        self._failures += 1
        self._last_failure = body.decode(errors="replace")
        if self._failures >= GONE_AFTER_FAILURES:
            return (f"target {self.url} stopped answering ({self._failures} health probes in a row failed, "
                    f"last: {self._last_failure})")
        return None

    def stop(self) -> None:
        pass  # not ours to stop

    def describe(self) -> dict:
        return {"type": "external", "url": self.url, "model": self.model, "simulated": False,
                "gpu": None, "gpu_count": None, "command": None}
