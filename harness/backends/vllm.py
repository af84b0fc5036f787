"""The vLLM backend: `vllm serve MODEL --host 127.0.0.1 --port P ...` launched and probed by LaunchedServer.

Only what is vLLM's own lives here: the flag names, flags current vLLM removed (refused with the fix),
the API key via VLLM_API_KEY, and readiness as "/v1/models lists the served name" (protocols.md A1).
"""

from __future__ import annotations

import json

from harness.backends.base import BackendError
from harness.backends.launched import LaunchedServer, opt, refuse_flags
from harness.backends.probe import http_get
from harness.config import VllmBackend as VllmConfig

# Flags vLLM no longer accepts ("unrecognized arguments" at start) → what to do instead. Add rows as vLLM drops more.
REMOVED_FLAGS = {
    "--disable-log-requests": "was removed in vLLM 0.12; request logging is off by default, "
                              "use --enable-log-requests to turn it on",
}
# Flags the harness sets itself, or must never pass on the command line.
MANAGED_FLAGS = {
    "--api-key": "is refused: set api_key_env so the key never appears in the command line / process list",
    "--host": "is set by the harness (127.0.0.1): remove it",
    "--port": "is set by the harness: use the backend's `port` key instead",
}


def vllm_argv(cfg: VllmConfig, port: int) -> list[str]:
    """The `vllm serve` command line for `cfg` on 127.0.0.1:`port` (only the flags the config sets)."""
    refuse_flags("vLLM", cfg.extra_args, {**REMOVED_FLAGS, **MANAGED_FLAGS})
    # tensor_parallel_size always has a value (1), so it is always passed: the command line records it.
    return [cfg.executable, "serve", cfg.model, "--host", "127.0.0.1", "--port", str(port),
            *opt("--tensor-parallel-size", cfg.tensor_parallel_size),
            *opt("--gpu-memory-utilization", cfg.gpu_memory_utilization),
            *opt("--max-num-seqs", cfg.max_num_seqs),
            *opt("--max-model-len", cfg.max_model_len),
            *opt("--quantization", cfg.quantization),
            *opt("--dtype", cfg.dtype),
            *opt("--served-model-name", cfg.served_model_name),
            *cfg.extra_args]


class VllmServer(LaunchedServer):
    kind = "vllm"

    def build_argv(self) -> list[str]:
        return vllm_argv(self.cfg, self.port)

    def key_env(self, key: str) -> dict[str, str]:
        return {"VLLM_API_KEY": key}  # vLLM's own fallback for --api-key

    @property
    def expected_model(self) -> str:
        return self.cfg.served_model_name or self.cfg.model  # vLLM names the model by its path when unset

    @property
    def gpu_count(self) -> int:
        return self.cfg.tensor_parallel_size

    def probe_served(self) -> tuple[list[str], str | None]:
        status, body = http_get(f"{self.url}/v1/models", headers=self.headers())
        if status == 401:
            raise BackendError(f"{self.url}/v1/models answered 401: the server wants an API key "
                               "(is VLLM_API_KEY set in your shell?); set api_key_env to the variable holding it")
        if status != 200:
            raise BackendError(f"{self.url}/v1/models answered HTTP {status} after /health was 200; "
                               f"check the server log {self.child.log_path}")
        try:
            names = [str(m["id"]) for m in json.loads(body).get("data") or []]
        except (ValueError, AttributeError, KeyError, TypeError):
            names = []
        return names, self._version()

    def _version(self) -> str | None:
        # GET /version exists on vLLM's OpenAI server; metadata only, so any failure just means "unknown".
        status, body = http_get(f"{self.url}/version")
        if status != 200:
            return None
        try:
            v = json.loads(body).get("version")
        except (ValueError, AttributeError):
            return None
        return str(v) if v else None
