"""Backends: one `Backend` interface (start, wait_ready, stop; a context manager) per server kind.

`make_backend` maps a scenario's backend config to its implementation.
"""

from __future__ import annotations

from pathlib import Path

from harness.backends.base import Backend, BackendError
from harness.config import ExternalBackend, LlamaCppBackend, SimBackend, TgiBackend, VllmBackend


def make_backend(cfg, log_path: Path) -> Backend:
    if isinstance(cfg, SimBackend):
        from harness.backends.sim import SimProcessBackend

        return SimProcessBackend(cfg, log_path)
    if isinstance(cfg, ExternalBackend):
        from harness.backends.external import ExternalServer

        return ExternalServer(cfg)
    if isinstance(cfg, VllmBackend):
        from harness.backends.vllm import VllmServer

        return VllmServer(cfg, log_path)
    if isinstance(cfg, TgiBackend):
        from harness.backends.tgi import TgiServer

        return TgiServer(cfg, log_path)
    if isinstance(cfg, LlamaCppBackend):
        from harness.backends.llamacpp import LlamaCppServer

        return LlamaCppServer(cfg, log_path)
    raise BackendError(f"backend type {getattr(cfg, 'type', cfg)!r} is not supported yet")


__all__ = ["Backend", "BackendError", "make_backend"]
