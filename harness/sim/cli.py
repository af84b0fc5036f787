"""CLI seam: `serve` and `list` subcommands of the simulated server (the harness's contract).

`serve` prints exactly one stdout line once listening:
    slabench-sim: serving MODEL (flavor FLAVOR) on http://HOST:PORT
Bad input → one stderr line naming the problem and the fix, exit 2. SIGTERM/SIGINT → exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from .catalog import SimConfigError, load_catalog
from .common import FaultConfig
from .server import ServeOptions, serve


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's default prints usage too)
        self.exit(2, f"slabench-sim: {message} (see --help)\n")


class _RaisingParser(_Parser):
    def error(self, message: str):  # in-process callers get an exception, not an exit
        raise SimConfigError(f"{message} (see slabench sim serve --help)")


def parse_serve_options(argv: list[str]) -> ServeOptions:
    """`serve` flags → ServeOptions for in-process users (offline runs). SimConfigError on bad flags."""
    args = _parser(_RaisingParser).parse_args(["serve", *argv] if argv[:1] != ["serve"] else argv)
    return _options(args)


def _parser(cls: type[argparse.ArgumentParser] = _Parser) -> argparse.ArgumentParser:
    p = cls(prog="python -m harness.sim", description="Simulated vLLM / TGI server for slabench.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=cls)
    s = sub.add_parser("serve", help="run a simulated server")
    s.add_argument("--flavor", choices=["vllm", "tgi"], default="vllm")
    s.add_argument("--model", default="llama-3-8b")
    s.add_argument("--gpu", default="a100-80gb")
    s.add_argument("--quantization", "-q", default="fp16")
    s.add_argument("--tensor-parallel-size", "-tp", type=int, default=1)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--speed", type=float, default=1.0, help="simulated seconds per wall second")
    s.add_argument("--served-model-name", default=None)
    s.add_argument("--fixed-ttft-ms", type=float, default=None, help="calibration mode (with --fixed-itl-ms)")
    s.add_argument("--fixed-itl-ms", type=float, default=None)
    s.add_argument("--catalog", default=None, help="YAML file adding GPUs / models")
    v = s.add_argument_group("vLLM capacity")
    v.add_argument("--max-num-seqs", type=int, default=None)
    v.add_argument("--max-num-batched-tokens", type=int, default=None)
    v.add_argument("--max-model-len", type=int, default=None)
    v.add_argument("--gpu-memory-utilization", type=float, default=0.92)
    t = s.add_argument_group("TGI capacity")
    t.add_argument("--max-concurrent-requests", type=int, default=128)
    t.add_argument("--max-batch-total-tokens", type=int, default=None)
    t.add_argument("--max-input-tokens", type=int, default=None)
    t.add_argument("--max-total-tokens", type=int, default=None)
    f = s.add_argument_group("fault injection (off by default)")
    f.add_argument("--fault-error-rate", type=float, default=0.0)
    f.add_argument("--fault-abort-rate", type=float, default=0.0)
    f.add_argument("--fault-stall-s", type=float, default=0.0)
    f.add_argument("--fault-malformed-rate", type=float, default=0.0)
    f.add_argument("--fault-crash-after-s", type=float, default=0.0)
    g = s.add_argument_group("gateway (off by default)")
    g.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` (vLLM: /v1* paths; "
                   "TGI: generation routes); wrong or missing key → 401")
    g.add_argument("--rate-limit-rps", type=float, default=None,
                   help="token-bucket rate limit on generation routes (simulator extension); over it → 429")
    g.add_argument("--rate-limit-burst", type=float, default=None, help="bucket size (default: max(1, rate))")
    ls = sub.add_parser("list", help="print the GPU and model catalogs")
    ls.add_argument("--catalog", default=None)
    return p


def _options(a: argparse.Namespace) -> ServeOptions:
    for name in ("fault_error_rate", "fault_abort_rate", "fault_malformed_rate"):
        if not 0 <= getattr(a, name) <= 1:
            raise SimConfigError(f"--{name.replace('_', '-')} must be between 0 and 1")
    for name in ("max_num_seqs", "max_num_batched_tokens", "max_model_len", "max_batch_total_tokens",
                 "max_input_tokens", "max_total_tokens", "max_concurrent_requests"):
        v = getattr(a, name)
        if v is not None and v < 1:
            raise SimConfigError(f"--{name.replace('_', '-')} must be >= 1, got {v}")
    if (a.fixed_ttft_ms is not None and a.fixed_ttft_ms < 0) or (a.fixed_itl_ms is not None and a.fixed_itl_ms < 0):
        raise SimConfigError("--fixed-ttft-ms and --fixed-itl-ms must be >= 0")
    return ServeOptions(
        flavor=a.flavor, model=a.model, gpu=a.gpu, quantization=a.quantization,
        tensor_parallel_size=a.tensor_parallel_size, host=a.host, port=a.port, seed=a.seed, speed=a.speed,
        served_model_name=a.served_model_name, fixed_ttft_ms=a.fixed_ttft_ms, fixed_itl_ms=a.fixed_itl_ms,
        catalog=a.catalog, max_num_seqs=a.max_num_seqs, max_num_batched_tokens=a.max_num_batched_tokens,
        max_model_len=a.max_model_len, gpu_memory_utilization=a.gpu_memory_utilization,
        max_concurrent_requests=a.max_concurrent_requests, max_batch_total_tokens=a.max_batch_total_tokens,
        max_input_tokens=a.max_input_tokens, max_total_tokens=a.max_total_tokens,
        faults=FaultConfig(a.fault_error_rate, a.fault_abort_rate, a.fault_stall_s, a.fault_malformed_rate,
                           a.fault_crash_after_s),
        api_key=a.api_key, rate_limit_rps=a.rate_limit_rps, rate_limit_burst=a.rate_limit_burst)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.cmd == "list":
            print(load_catalog(args.catalog).describe())
            return 0
        return asyncio.run(serve(_options(args)))
    except SimConfigError as exc:
        print(f"slabench-sim: {exc}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 0
