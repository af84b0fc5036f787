"""CLI seam: `serve`, `list` and `validate` subcommands of the simulated server (the harness's contract).

`serve` prints exactly one stdout line once listening:
    slabench-sim: serving MODEL (flavor FLAVOR) on http://HOST:PORT
Bad input → one stderr line naming the problem and the fix, exit 2. SIGTERM/SIGINT → exit 0.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import sys
from typing import Callable

from .catalog import SimConfigError, load_catalog
from .common import FaultConfig
from .server import ServeOptions, serve
from . import SIM_API_KEY_ENV

# Flag bounds. The speed, calibration and seed limits are the scenario's SimBackend limits
# (harness/config/backends.py; a unit test keeps them equal). Float flags also parse "nan" and "inf",
# which would hang the server (speed) or never fire (faults), so every float must be finite.
MIN_SPEED, MAX_SPEED = 1e-3, 1e6  # simulated s per wall s: below, a 1 s request takes 16+ minutes
MAX_FIXED_MS = 3_600_000.0  # calibration TTFT/ITL: an hour per token is no longer a latency test
MAX_SEED = 2**63 - 1
MAX_FAULT_S = 7 * 24 * 3600.0  # a stall or crash-after beyond the longest run (a week) never happens
MAX_RATE = 1e6  # gateway rate limit (req/s) and bucket size: far above what one server answers
MAX_COUNT = 1_000_000_000  # capacity flags (tokens, sequences): the catalog's arithmetic judges the fit
TGI_PREFIX_CACHING_ENV = "PREFIX_CACHING"  # TGI 3: launcher resolve_attention, server models/globals.py


def _one_line(text: str) -> str:
    """`text` with line breaks and other unprintable characters escaped (user input quoted in errors)."""
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


def _bounded(kind: type, lo: float, hi: float, lo_open: bool = False) -> Callable[[str], float]:
    """An argparse `type=` that accepts a finite `kind` in [lo, hi] ((lo, hi] with lo_open), one-line error else."""
    def parse(text: str):
        shown = _one_line(text[:40].strip())
        try:
            v = kind(text)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"'{shown}' is not {'a number' if kind is float else 'an integer'}") \
                from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"must be a finite number, got '{shown}'")
        if v < lo or (lo_open and v == lo) or v > hi:
            fmt = "{:,}" if kind is int else "{:g}"
            low = ("> " if lo_open else ">= ") + fmt.format(lo)
            raise argparse.ArgumentTypeError(f"must be {low} and <= {fmt.format(hi)}, got {shown}")
        return v
    return parse


_COUNT = _bounded(int, 1, MAX_COUNT)
_RATE = _bounded(float, 0, MAX_RATE, lo_open=True)
_SHARE = _bounded(float, 0, 1)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # one line, exit 2 (argparse's default prints usage too)
        self.exit(2, f"slabench-sim: {_one_line(message)} (see --help)\n")


class _RaisingParser(_Parser):
    def error(self, message: str):  # in-process callers get an exception, not an exit
        raise SimConfigError(f"{_one_line(message)} (see slabench sim serve --help)")


def parse_serve_options(argv: list[str]) -> ServeOptions:
    """`serve` flags → ServeOptions for in-process users (offline runs). SimConfigError on bad flags."""
    args = _parser(_RaisingParser).parse_args(["serve", *argv] if argv[:1] != ["serve"] else argv)
    return _options(args)


def _parser(cls: type[argparse.ArgumentParser] = _Parser, prog: str = "python -m harness.sim") -> argparse.ArgumentParser:
    p = cls(prog=prog, description="Simulated vLLM / TGI server for slabench.")
    sub = p.add_subparsers(dest="cmd", required=True, parser_class=cls)
    s = sub.add_parser("serve", help="run a simulated server")
    s.add_argument("--flavor", choices=["vllm", "tgi"], default="vllm")
    s.add_argument("--model", default="llama-3-8b")
    s.add_argument("--gpu", default="a100-80gb")
    s.add_argument("--quantization", "-q", default="fp16")
    s.add_argument("--tensor-parallel-size", "-tp", type=_bounded(int, 1, 1024), default=1)
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=_bounded(int, 0, 65535), default=0)
    s.add_argument("--seed", type=_bounded(int, -MAX_SEED - 1, MAX_SEED), default=0)
    s.add_argument("--speed", type=_bounded(float, MIN_SPEED, MAX_SPEED), default=1.0,
                   help="simulated seconds per wall second")
    s.add_argument("--served-model-name", default=None)
    s.add_argument("--fixed-ttft-ms", type=_bounded(float, 0, MAX_FIXED_MS), default=None,
                   help="calibration mode (with --fixed-itl-ms)")
    s.add_argument("--fixed-itl-ms", type=_bounded(float, 0, MAX_FIXED_MS), default=None)
    s.add_argument("--catalog", default=None, help="YAML file adding GPUs / models")
    v = s.add_argument_group("vLLM capacity")
    v.add_argument("--max-num-seqs", type=_COUNT, default=None)
    v.add_argument("--max-num-batched-tokens", type=_COUNT, default=None)
    v.add_argument("--max-model-len", type=_COUNT, default=None)
    v.add_argument("--gpu-memory-utilization", type=_bounded(float, 0, 1, lo_open=True), default=0.92)
    v.add_argument("--max-num-queued-reqs", type=_bounded(int, 0, MAX_COUNT), default=None,
                   help="vLLM 0.33 admission control: unfinished (waiting + running) requests past which a new one "
                   "gets 503 (default: unbounded, the queue grows)")
    v.add_argument("--max-num-queued-tokens", type=_bounded(int, 0, MAX_COUNT), default=None,
                   help="vLLM 0.33 admission control: prompt tokens of requests still in prefill at which a new "
                   "request gets 503 (default: unbounded)")
    v.add_argument("--enable-prefix-caching", action=argparse.BooleanOptionalAction, default=None,
                   help="automatic prefix caching (default: on, as in vLLM)")
    t = s.add_argument_group("TGI capacity")
    t.add_argument("--max-concurrent-requests", type=_COUNT, default=128)
    t.add_argument("--max-batch-total-tokens", type=_COUNT, default=None)
    t.add_argument("--max-input-tokens", type=_COUNT, default=None)
    t.add_argument("--max-total-tokens", type=_COUNT, default=None)
    # TGI 3 keeps cached prefixes in a radix trie evicted LRU (backends/v3/src/radix.rs) at its attention's
    # block size (1 token with flashinfer, 256 with flashdecoding) and also recomputes a fully cached
    # prompt's last token; the sim caches 16-token blocks for both flavors.
    t.add_argument("--prefix-caching", action=argparse.BooleanOptionalAction, default=None,
                   help=f"prefix caching (default: ${TGI_PREFIX_CACHING_ENV} as TGI 3 reads it, '1' or 'true' = on; "
                   "unset: on, TGI's default with flashinfer/flashdecoding attention)")
    f = s.add_argument_group("fault injection (off by default)")
    f.add_argument("--fault-error-rate", type=_SHARE, default=0.0)
    f.add_argument("--fault-abort-rate", type=_SHARE, default=0.0)
    f.add_argument("--fault-stall-s", type=_bounded(float, 0, MAX_FAULT_S), default=0.0)
    f.add_argument("--fault-malformed-rate", type=_SHARE, default=0.0)
    f.add_argument("--fault-crash-after-s", type=_bounded(float, 0, MAX_FAULT_S), default=0.0)
    g = s.add_argument_group("gateway (off by default)")
    g.add_argument("--api-key", default=None, help="require `Authorization: Bearer KEY` (vLLM: /v1* paths; "
                   f"TGI: generation routes); wrong or missing key → 401. Default: ${SIM_API_KEY_ENV}, which "
                   "keeps the key off the command line (slabench launches the sim that way)")
    g.add_argument("--rate-limit-rps", type=_RATE, default=None,
                   help="token-bucket rate limit on generation routes (simulator extension); over it → 429")
    g.add_argument("--rate-limit-burst", type=_RATE, default=None, help="bucket size (default: max(1, rate))")
    g.add_argument("--circuit-failure-threshold", type=_bounded(int, 1, MAX_COUNT), default=None,
                   help="circuit breaker (the guide's failure_threshold, simulator extension): open after N "
                   "consecutive engine failures (5xx, 429, in-stream error) and answer 503 at once")
    g.add_argument("--circuit-recovery-s", type=_bounded(float, 0, MAX_FAULT_S, lo_open=True), default=None,
                   help="seconds the circuit stays open before one probe request is let through (the guide's "
                   "recovery_timeout; default 30)")
    ls = sub.add_parser("list", help="print the GPU and model catalogs")
    ls.add_argument("--catalog", default=None)
    va = sub.add_parser("validate", help="run published measurements through the offline sim and print "
                        "published vs simulated (docs/sim-validation.md)")
    va.add_argument("--points", default=None, help="points YAML file (default: the shipped set, "
                    "harness/sim/validation/points.yaml)")
    va.add_argument("--catalog", default=None, help="YAML file adding GPUs / models the points refer to")
    return p


def _prefix_caching(a: argparse.Namespace) -> bool:
    """Each flavor's own switch; the other flavor's flag is refused rather than silently ignored."""
    if a.flavor == "vllm":
        if a.prefix_caching is not None:
            raise SimConfigError("--[no-]prefix-caching is the TGI flavor's switch: with --flavor vllm use "
                                 "--enable-prefix-caching / --no-enable-prefix-caching")
        return a.enable_prefix_caching is not False
    if a.enable_prefix_caching is not None:
        raise SimConfigError("--[no-]enable-prefix-caching is vLLM's flag: with --flavor tgi use --prefix-caching / "
                             f"--no-prefix-caching (or {TGI_PREFIX_CACHING_ENV}=0)")
    if a.prefix_caching is not None:
        return a.prefix_caching
    env = os.environ.get(TGI_PREFIX_CACHING_ENV)  # TGI's launcher defaults it to "true"; its server
    return env is None or env.lower() in ("1", "true")  # reads "1" / "true" as on, anything else off


def _options(a: argparse.Namespace) -> ServeOptions:
    # Every number was range-checked as it was parsed (`_bounded`); the combinations are checked by
    # the server's build (calibration pair, capacity arithmetic).
    return ServeOptions(
        flavor=a.flavor, model=a.model, gpu=a.gpu, quantization=a.quantization,
        tensor_parallel_size=a.tensor_parallel_size, host=a.host, port=a.port, seed=a.seed, speed=a.speed,
        served_model_name=a.served_model_name, fixed_ttft_ms=a.fixed_ttft_ms, fixed_itl_ms=a.fixed_itl_ms,
        catalog=a.catalog, max_num_seqs=a.max_num_seqs, max_num_batched_tokens=a.max_num_batched_tokens,
        max_model_len=a.max_model_len, gpu_memory_utilization=a.gpu_memory_utilization,
        prefix_caching=_prefix_caching(a),
        max_concurrent_requests=a.max_concurrent_requests, max_batch_total_tokens=a.max_batch_total_tokens,
        max_input_tokens=a.max_input_tokens, max_total_tokens=a.max_total_tokens,
        faults=FaultConfig(a.fault_error_rate, a.fault_abort_rate, a.fault_stall_s, a.fault_malformed_rate,
                           a.fault_crash_after_s),
        api_key=a.api_key, rate_limit_rps=a.rate_limit_rps, rate_limit_burst=a.rate_limit_burst,
        max_num_queued_reqs=a.max_num_queued_reqs, max_num_queued_tokens=a.max_num_queued_tokens,
        circuit_failure_threshold=a.circuit_failure_threshold, circuit_recovery_s=a.circuit_recovery_s)


def main(argv: list[str] | None = None, prog: str = "python -m harness.sim") -> int:
    """The sim's command line; `prog` is how help and usage name it (`slabench sim` from slabench)."""
    args = _parser(prog=prog).parse_args(argv)
    if args.cmd == "serve" and args.api_key is None:
        args.api_key = os.environ.get(SIM_API_KEY_ENV) or None
    try:
        if args.cmd == "list":
            print(load_catalog(args.catalog).describe())
            return 0
        if args.cmd == "validate":
            from .validation import format_table, load_points, run_points  # the offline path: loaded on use

            points = load_points(args.points, args.catalog)
            print(format_table(run_points(points, args.catalog)), flush=True)
            return 0
        return asyncio.run(serve(_options(args)))
    except SimConfigError as exc:
        print(f"slabench-sim: {_one_line(str(exc))}", file=sys.stderr, flush=True)
        return 2
    except KeyboardInterrupt:
        return 0
