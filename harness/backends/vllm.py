"""The vLLM backend: `vllm serve MODEL --host 127.0.0.1 --port P ...` launched and probed by LaunchedServer.

Only what is vLLM's own lives here: the flag names, the flags the harness manages (refused in extra_args in
every spelling vLLM's parser reads: `--served_model_name`, `--api-k`, `-tp`), the API key via VLLM_API_KEY, and
readiness as "/v1/models lists the served name" (protocols.md A1).

Every decision below was checked against vLLM 0.33.0 and 0.34.0, the newest on PyPI on 2026-12-03 (`pip download
--no-deps vllm==0.34.0`; paths relative to the wheel's vllm/ package): the flags of `vllm serve` are FrontendArgs
(entrypoints/common/cli_args.py) and AsyncEngineArgs/EngineArgs (engine/arg_utils.py), parsed by
FlexibleArgumentParser (utils/argparse_utils.py, the same file in both). "0.33.0" below holds for 0.34.0 too.
"""

from __future__ import annotations

import json

from harness.backends.base import BackendError
from harness.backends.launched import LaunchedServer, opt
from harness.backends.probe import http_get
from harness.config import VllmBackend as VllmConfig
from harness.config.backends import vllm_flag

# Flags current vLLM no longer accepts ("unrecognized arguments" at start) → what to do instead. None in 0.33.0.
# --disable-log-requests is NOT one: 0.33.0's FlexibleArgumentParser registers EnableDisableAction for every
# BooleanOptionalAction (utils/argparse_utils.py), which pairs `--enable-x` with `--disable-x`, so
# `--enable-log-requests` (AsyncEngineArgs, engine/arg_utils.py) also takes `--disable-log-requests` (its default,
# False: request logging off). It was removed in 0.12 (PR #29402) and came back this way; it is passed through.
REMOVED_FLAGS: dict[str, str] = {}
_PORT_KEY = "is set by the harness: use the backend's `port` key instead"
_UNREACHABLE = "would make the server unreachable to the harness, which talks plain HTTP to 127.0.0.1:`port`: remove it"
# Flags the harness sets itself, or that must never be on the command line (vLLM 0.33.0 source of each in brackets).
MANAGED_FLAGS = {
    # [cli_args.py FrontendArgs.api_key: list, env fallback VLLM_API_KEY in serve/middleware/register.py]
    "--api-key": "is refused: set api_key_env so the key never appears in the command line / process list",
    # [cli_args.py FrontendArgs.host / .port; the last occurrence wins, so a second one would override ours]
    "--host": "is set by the harness (127.0.0.1): remove it",
    "--port": _PORT_KEY,
    # [cli_args.py FrontendArgs.uds: "If set, host and port arguments are ignored"]
    "--uds": _UNREACHABLE,
    # [cli_args.py FrontendArgs.ssl_keyfile / ssl_certfile: the server then speaks HTTPS only]
    "--ssl-keyfile": _UNREACHABLE,
    "--ssl-certfile": _UNREACHABLE,
    # [cli_args.py make_arg_parser: --headless runs no API server; --grpc serves gRPC on --port instead of HTTP]
    "--headless": _UNREACHABLE,
    "--grpc": _UNREACHABLE,
    # [utils/argparse_utils.py parse_args: `serve ... --model X` moves X to the positional slot, so with our
    # positional model vLLM sees two and exits with "unrecognized arguments"]
    "--model": "is set by the harness: use the backend's `model` key instead",
    # [arg_utils.py --served-model-name: the name readiness waits for and requests use]
    "--served-model-name": "is set by the harness: use the backend's `served_model_name` key instead",
    # [arg_utils.py --tensor-parallel-size/-tp: always passed (default 1); the cost model counts GPUs from the key]
    "--tensor-parallel-size": "is set by the harness: use the backend's `tensor_parallel_size` key instead",
}
# Flags with a backend key: refused only when that key is set too (two values, the config's silently overridden);
# alone in extra_args they pass through (e.g. `--max-model-len auto`, which the key cannot say).
# [arg_utils.py 0.33.0: --gpu-memory-utilization, --max-num-seqs, --max-model-len, --quantization/-q, --dtype]
KEYED_FLAGS = {"--gpu-memory-utilization": "gpu_memory_utilization", "--max-num-seqs": "max_num_seqs",
               "--max-model-len": "max_model_len", "--quantization": "quantization", "--dtype": "dtype"}


def refuse_vllm_flags(cfg: VllmConfig) -> None:
    """BackendError on the first extra_args entry vLLM would read as a managed flag (or a keyed one already set)."""
    refused = {**REMOVED_FLAGS, **MANAGED_FLAGS,
               **{f: f"is set by the harness from the backend's `{key}` key: set it there only"
                  for f, key in KEYED_FLAGS.items() if getattr(cfg, key) is not None}}
    for a in cfg.extra_args:
        flag = vllm_flag(a, refused)
        if flag:
            given = a.split("=", 1)[0]
            read_as = "" if given == flag else f" (vLLM reads {given} as {flag})"
            raise BackendError(f"vLLM extra_args: {flag}{read_as} {refused[flag]}")


def vllm_argv(cfg: VllmConfig, port: int) -> list[str]:
    """The `vllm serve` command line for `cfg` on 127.0.0.1:`port` (only the flags the config sets)."""
    refuse_vllm_flags(cfg)
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
        names = self.openai_models("the server wants an API key (is VLLM_API_KEY set in your shell?); "
                                   "set api_key_env to the variable holding it")
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
