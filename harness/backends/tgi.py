"""The TGI backend: `text-generation-launcher` natively, or the TGI image via `docker run`, on LaunchedServer.

What is TGI's own lives here: launcher flag names, the docker form (port 80 inside, --gpus, a named
container that stop() also `docker stop`s), the API key via API_KEY, and readiness as /info's model_id.
"""

from __future__ import annotations

import json
import subprocess

from harness.backends.base import BackendError
from harness.backends.launched import LaunchedServer, opt, refuse_flags
from harness.backends.probe import http_get
from harness.config import TgiBackend as TgiConfig

MANAGED_FLAGS = {
    "--api-key": "is refused: set api_key_env so the key never appears in the command line / process list",
    "--hostname": "is set by the harness (127.0.0.1): remove it",
    "--port": "is set by the harness: use the backend's `port` key instead",
    "-p": "is set by the harness: use the backend's `port` key instead",
    "--model-id": "is set by the harness: use the backend's `model_id` key instead",
}
DOCKER_STOP_GRACE_S = 10  # `docker stop -t`: SIGTERM, then SIGKILL after this many seconds
DOCKER_STOP_TIMEOUT_S = 30  # never let a wedged docker daemon hang teardown


def container_name(port: int) -> str:
    return f"slabench-tgi-{port}"


def gpus_arg(cuda_visible_devices: str | None) -> str:
    # The quotes are part of the value: docker parses --gpus as CSV, so "device=0,1" must stay one field.
    return "all" if cuda_visible_devices is None else f'"device={cuda_visible_devices}"'


def launcher_flags(cfg: TgiConfig) -> list[str]:
    """The model and capacity flags, the same natively and after the docker image name."""
    refuse_flags("TGI", cfg.extra_args, MANAGED_FLAGS)
    return ["--model-id", cfg.model_id,
            *opt("--num-shard", cfg.num_shard),
            *opt("--max-concurrent-requests", cfg.max_concurrent_requests),
            *opt("--max-batch-total-tokens", cfg.max_batch_total_tokens),
            *opt("--max-input-tokens", cfg.max_input_tokens),
            *opt("--max-total-tokens", cfg.max_total_tokens),
            *opt("--quantize", cfg.quantize),
            *opt("--dtype", cfg.dtype),
            *cfg.extra_args]


def tgi_argv(cfg: TgiConfig, port: int) -> list[str]:
    """The launcher (native) or `docker run` (docker) command line serving on 127.0.0.1:`port`."""
    flags = launcher_flags(cfg)
    if cfg.launcher == "native":
        return [cfg.executable, *flags[:2], "--hostname", "127.0.0.1", "--port", str(port), *flags[2:]]
    # The image listens on port 80 (ENV PORT=80); publish it on loopback only, like the native form.
    argv = ["docker", "run", "--rm", "--name", container_name(port), "--gpus", gpus_arg(cfg.cuda_visible_devices),
            "--shm-size", cfg.shm_size, "-p", f"127.0.0.1:{port}:80"]
    if cfg.docker_volume:
        argv += ["-v", f"{cfg.docker_volume}:/data"]
    if cfg.api_key_env:
        argv += ["-e", "API_KEY"]  # name only: docker copies the value from its own env, off the command line
    return argv + [cfg.docker_image, *flags]


class TgiServer(LaunchedServer):
    kind = "tgi"

    def __init__(self, cfg: TgiConfig, log_path, **kw):
        self._docker_stopped = False  # stop() is safe to call twice; `docker stop` runs once
        super().__init__(cfg, log_path, **kw)

    def build_argv(self) -> list[str]:
        return tgi_argv(self.cfg, self.port)

    def key_env(self, key: str) -> dict[str, str]:
        return {"API_KEY": key}  # the launcher reads every flag from its upper-case env var

    def sets_cuda_env(self) -> bool:
        return self.cfg.launcher == "native"

    @property
    def expected_model(self) -> str:
        return self.cfg.model_id

    @property
    def gpu_count(self) -> int:
        return self.cfg.num_shard or 1

    def probe_served(self) -> tuple[list[str], str | None]:
        status, body = http_get(f"{self.url}/info")  # open even when an API key is set
        try:
            info = json.loads(body) if status == 200 else {}
        except ValueError:
            info = {}
        if not isinstance(info, dict) or not info.get("model_id"):
            raise BackendError(f"{self.url}/info answered HTTP {status} without a model_id after /health was 200: "
                               "is this a TGI server? check the `port` key and the server log")
        return [str(info["model_id"])], (str(info["version"]) if info.get("version") else None)

    def stop(self) -> None:
        # The container lives under the docker daemon, outside our process group: killing the `docker run`
        # client alone may leave it running, so ask the daemon too (bounded, errors ignored).
        if self.cfg.launcher == "docker" and self.child.proc is not None and not self._docker_stopped:
            self._docker_stopped = True
            try:
                subprocess.run(["docker", "stop", "-t", str(DOCKER_STOP_GRACE_S), container_name(self.port)],
                               stdin=subprocess.DEVNULL, capture_output=True, timeout=DOCKER_STOP_TIMEOUT_S,
                               env=self.child.env)
            except (OSError, subprocess.TimeoutExpired):
                pass
        super().stop()
