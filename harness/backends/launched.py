"""Shared lifecycle of servers the harness launches on real GPUs (vLLM, TGI): port, env, readiness, teardown.

`LaunchedServer` owns the ChildProcess and the probes; vllm.py and tgi.py say only what differs:
the command line, which env var carries the API key, and how the server proves it serves the model.
"""

from __future__ import annotations

import json
import os
import socket
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any

from harness.backends.base import Backend, BackendError
from harness.backends.process import ChildProcess, free_port, redact, tail
from harness.backends.probe import HealthTimeout, http_get, wait_healthy


def port_in_use(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


def read_api_key(env_name: str | None) -> str | None:
    """The key named by `api_key_env`; a missing variable is a config error, not an unauthenticated run."""
    if not env_name:
        return None
    key = os.environ.get(env_name)
    if not key:
        raise BackendError(f"api_key_env names ${env_name}, which is not set: export it or drop api_key_env")
    return key


def opt(flag: str, value: Any) -> list[str]:
    """`[flag, value]` when the config sets the value, else nothing (the server's own default applies)."""
    return [] if value is None else [flag, str(value)]


def refuse_flags(server: str, args: list[str], refused: dict[str, str]) -> None:
    """Raise on the first `--flag` or `--flag=value` in `args` listed in `refused` (flag → the fix)."""
    for a in args:
        flag = a.split("=", 1)[0]
        if flag in refused:
            raise BackendError(f"{server} extra_args: {flag} {refused[flag]}")


class LaunchedServer(Backend):
    """A server started as a child on 127.0.0.1:`port`; ready when /health is 200 and it serves the model."""

    kind = "launched"  # describe()["type"]

    def __init__(self, cfg, log_path: Path, *, clock=time.monotonic, sleep=time.sleep):
        self.cfg = cfg
        # clock/sleep reach the readiness poll, so tests can interrupt it (Ctrl-C) without real waits.
        self._clock, self._sleep = clock, sleep
        self.port = cfg.port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.model = None
        self.version: str | None = None
        # The argv is built (and bad extra_args refused) here, so a config error surfaces before any launch.
        self.child = ChildProcess(self.build_argv(), Path(log_path))

    # ------------------------------------------------------------ what subclasses define

    @abstractmethod
    def build_argv(self) -> list[str]:
        """The full command line; never contains the API key."""

    @abstractmethod
    def key_env(self, key: str) -> dict[str, str]:
        """Environment entries that hand the API key to the child."""

    @abstractmethod
    def probe_served(self) -> tuple[list[str], str | None]:
        """After /health is 200: (model names the server lists, its version), or BackendError."""

    def openai_models(self, unauthorized_hint: str | None = None) -> list[str]:
        """The model ids an OpenAI-compatible server lists at /v1/models (vLLM, llama.cpp), or BackendError."""
        status, body = http_get(f"{self.url}/v1/models", headers=self.headers())
        if status == 401 and unauthorized_hint:
            raise BackendError(f"{self.url}/v1/models answered 401: {unauthorized_hint}")
        if status != 200:
            raise BackendError(f"{self.url}/v1/models answered HTTP {status} after /health was 200; "
                               f"check the server log {self.child.log_path}")
        try:
            return [str(m["id"]) for m in json.loads(body).get("data") or []]
        except (ValueError, AttributeError, KeyError, TypeError):
            return []

    @property
    @abstractmethod
    def expected_model(self) -> str:
        """The name the server must list once ready (and the one requests will use)."""

    @property
    @abstractmethod
    def gpu_count(self) -> int:
        """GPUs the server spreads the model over (for the cost model)."""

    def sets_cuda_env(self) -> bool:
        """Whether CUDA_VISIBLE_DEVICES applies to the child (not for `docker run`, which uses --gpus)."""
        return True

    # ------------------------------------------------------------ shared lifecycle

    @property
    def program(self) -> str:
        return Path(self.child.argv[0]).name

    def headers(self) -> dict[str, str]:
        key = read_api_key(self.cfg.api_key_env)
        return {"Authorization": f"Bearer {key}"} if key else {}

    def child_env(self) -> dict[str, str]:
        env = dict(os.environ)
        key = read_api_key(self.cfg.api_key_env)
        if key:
            env.update(self.key_env(key))
        if self.cfg.cuda_visible_devices is not None and self.sets_cuda_env():
            env["CUDA_VISIBLE_DEVICES"] = self.cfg.cuda_visible_devices
        return env

    def start(self) -> None:
        env = self.child_env()  # raises before launching when the API key variable is missing
        # A fixed port someone already serves on would answer our /health probe for a server that is not ours.
        if self.cfg.port and port_in_use(self.port):
            raise BackendError(f"port {self.port} on 127.0.0.1 is already in use: stop what runs there or drop `port` "
                               "(a free port is picked when it is not set)")
        self.child.env = env
        self.child.start()

    def wait_ready(self) -> None:
        timeout = self.cfg.startup_timeout_s
        try:
            wait_healthy(self.url, timeout, alive=self.child.death_message, headers=self.headers(),
                         clock=self._clock, sleep=self._sleep)
        except BackendError as exc:
            dead = self.child.death_message()
            if dead:  # exited while loading (out of memory, bad model id, bad flag): its log says why
                raise BackendError(dead) from None
            last = exc.last if isinstance(exc, HealthTimeout) else str(exc)
            raise BackendError(f"{self.program} did not become ready within {timeout:g} s (last /health: {last}): "
                               f"raise startup_timeout_s if it is still loading; last log lines:\n"
                               f"{tail(self.child.log_path)}") from None
        names, self.version = self.probe_served()
        # On a fixed port, or after a port race, another server may have answered /health: the model tells.
        if self.expected_model not in names:
            raise BackendError(f"{self.url} serves {names or 'no model'}, not '{self.expected_model}': another server "
                               f"may hold port {self.port}; stop it or drop `port`")
        self.model = self.expected_model

    def stop(self) -> None:
        self.child.stop()

    def poll_crash(self) -> str | None:
        return self.child.death_message()

    def describe(self) -> dict[str, Any]:
        return {"type": self.kind, "command": redact(self.child.argv), "url": self.url,
                "model": self.model or self.expected_model,
                "gpu": self.cfg.gpu, "gpu_count": self.gpu_count, "simulated": False, "version": self.version}
