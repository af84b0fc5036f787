"""The simulated backend: launches `python -m harness.sim serve` on a free port and waits for it.

The sim prints `... on http://127.0.0.1:PORT` once listening; readiness is then /health = 200
and the served model listed, exactly as for a real vLLM or TGI server.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from harness.backends.base import Backend
from harness.backends.launched import read_api_key
from harness.backends.process import ChildProcess
from harness.backends.probe import served_model, wait_healthy
from harness.config import SimBackend as SimConfig
from harness.sim import SIM_API_KEY_ENV

LISTEN_RX = r"slabench-sim: serving .* on (http://[\d.]+:\d+)"


def sim_argv(cfg: SimConfig) -> list[str]:
    argv = [sys.executable, "-m", "harness.sim", "serve", "--flavor", cfg.flavor, "--model", cfg.model,
            "--gpu", cfg.gpu, "--quantization", cfg.quantization,
            "--tensor-parallel-size", str(cfg.tensor_parallel_size), "--host", "127.0.0.1", "--port", "0",
            "--seed", str(cfg.seed), "--speed", str(cfg.speed)]
    if cfg.fixed_ttft_ms is not None:
        argv += ["--fixed-ttft-ms", str(cfg.fixed_ttft_ms), "--fixed-itl-ms", str(cfg.fixed_itl_ms)]
    if cfg.max_num_seqs is not None and cfg.flavor == "vllm":
        argv += ["--max-num-seqs", str(cfg.max_num_seqs)]
    if cfg.max_model_len is not None and cfg.flavor == "vllm":
        argv += ["--max-model-len", str(cfg.max_model_len)]
    if cfg.prefix_caching is not None:  # each flavor's own switch (TGI's: its PREFIX_CACHING variable)
        name = "enable-prefix-caching" if cfg.flavor == "vllm" else "prefix-caching"
        argv.append(f"--{'' if cfg.prefix_caching else 'no-'}{name}")
    for flag, v in (("--max-num-queued-reqs", cfg.max_num_queued_reqs),
                    ("--max-num-queued-tokens", cfg.max_num_queued_tokens),
                    ("--circuit-failure-threshold", cfg.circuit_failure_threshold),
                    ("--circuit-recovery-s", cfg.circuit_recovery_s)):
        if v is not None:
            argv += [flag, str(v)]
    return argv + list(cfg.extra_args)


class SimProcessBackend(Backend):
    def __init__(self, cfg: SimConfig, log_path: Path):
        self.cfg = cfg
        self.child = ChildProcess(sim_argv(cfg), log_path)

    def start(self) -> None:
        key = read_api_key(self.cfg.api_key_env)
        if key:  # the gateway key goes through the environment, never the command line or meta.json
            self.child.env = {**os.environ, SIM_API_KEY_ENV: key}
        self.child.start()

    def wait_ready(self) -> None:
        m = self.child.wait_for_log(LISTEN_RX, self.cfg.startup_timeout_s)
        self.url = m.group(1)
        wait_healthy(self.url, self.cfg.startup_timeout_s, alive=self.child.death_message)
        key = read_api_key(self.cfg.api_key_env)
        self.model = served_model(self.url, headers={"Authorization": f"Bearer {key}"} if key else None) \
            or self.cfg.model

    def stop(self) -> None:
        self.child.stop()

    def poll_crash(self) -> str | None:
        return self.child.death_message()

    def describe(self) -> dict:
        c = self.cfg
        return {"type": "sim", "flavor": c.flavor, "command": self.child.argv, "url": self.url,
                "model": self.model or c.model, "gpu": c.gpu, "gpu_count": c.tensor_parallel_size,
                "quantization": c.quantization, "simulated": True,
                "calibration_mode": c.fixed_ttft_ms is not None}
