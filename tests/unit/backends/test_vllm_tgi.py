"""vLLM and TGI backends against fake `vllm`, `text-generation-launcher` and `docker` from tests/fakes.

The fakes parse the real flag names (an unknown flag exits 2) and take FAKE_MODE=ok|crash|hang|
never_ready|crash_after_ready; tests/fakes goes first on PATH so the backends launch them by name.
"""

import os
import time
from pathlib import Path

import pytest

from tests.procs import wait_until

from harness.backends import BackendError, make_backend
from harness.backends.launched import free_port
from harness.backends.tgi import TgiServer, tgi_argv
from harness.backends.vllm import REMOVED_FLAGS, VllmServer, vllm_argv
from harness.config import TgiBackend, VllmBackend

FAKES = Path(__file__).resolve().parents[2] / "fakes"
KEY = "sk-test-0123456789"


@pytest.fixture(autouse=True)
def fake_path(monkeypatch):
    monkeypatch.setenv("PATH", f"{FAKES}{os.pathsep}{os.environ.get('PATH', '')}")
    monkeypatch.setenv("FAKE_MODE", "ok")
    monkeypatch.delenv("VLLM_API_KEY", raising=False)
    monkeypatch.delenv("API_KEY", raising=False)


def vllm(**kw):
    return VllmBackend(type="vllm", **{"model": "org/tiny-model", "startup_timeout_s": 10, **kw})


def tgi(**kw):
    return TgiBackend(type="tgi", **{"model_id": "org/tiny-model", "startup_timeout_s": 10, **kw})


def group_alive(pgid):
    """Live (non-zombie) processes in process group `pgid` — the launched server and anything it forked."""
    found = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            stat = (d / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)": state ppid pgrp ...
        if fields[2] == str(pgid) and fields[0] != "Z":
            found.append(int(d.name))
    return found


def launched_pid(b):
    assert b.child.proc is not None, "the server was never launched"
    return b.child.proc.pid


# ---------------------------------------------------------------- argv building (no processes)

def test_vllm_argv_all_flags_in_order():
    cfg = vllm(served_model_name="tiny", tensor_parallel_size=2, gpu_memory_utilization=0.85, max_num_seqs=64,
               max_model_len=4096, quantization="awq", dtype="half", extra_args=["--enforce-eager"])
    assert vllm_argv(cfg, 8123) == [
        "vllm", "serve", "org/tiny-model", "--host", "127.0.0.1", "--port", "8123",
        "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.85", "--max-num-seqs", "64",
        "--max-model-len", "4096", "--quantization", "awq", "--dtype", "half", "--served-model-name", "tiny",
        "--enforce-eager"]


def test_vllm_argv_only_set_flags_and_extra_args_last():
    argv = vllm_argv(vllm(extra_args=["--max-num-batched-tokens", "8192"]), 9000)
    assert argv == ["vllm", "serve", "org/tiny-model", "--host", "127.0.0.1", "--port", "9000",
                    "--tensor-parallel-size", "1", "--max-num-batched-tokens", "8192"]


def test_vllm_disable_log_requests_is_passed_through():
    # vLLM 0.33.0's FlexibleArgumentParser pairs --enable-log-requests with --disable-log-requests
    # (EnableDisableAction, vllm/utils/argparse_utils.py): accepted, and the default (request logging off).
    assert vllm_argv(vllm(extra_args=["--disable-log-requests"]), 8000)[-1] == "--disable-log-requests"
    assert vllm_argv(vllm(extra_args=["--enable-log-requests"]), 8000)[-1] == "--enable-log-requests"
    assert REMOVED_FLAGS == {}


@pytest.mark.parametrize("args,flag,key", [
    (["--host", "0.0.0.0"], "--host", "127.0.0.1"),
    (["--port=9"], "--port", "`port`"),
    (["--po", "9"], "--port", "`port`"),  # argparse abbreviation (allow_abbrev is on in vLLM's parser)
    (["--served_model_name", "x"], "--served-model-name", "`served_model_name`"),  # _ reads as -
    (["--served-m", "x"], "--served-model-name", "`served_model_name`"),
    (["-tp", "2"], "--tensor-parallel-size", "`tensor_parallel_size`"),
    (["-tp=2"], "--tensor-parallel-size", "`tensor_parallel_size`"),
    (["-t", "2"], "--tensor-parallel-size", "`tensor_parallel_size`"),  # argparse reads -t as -tp
    (["--tensor_parallel_size", "2"], "--tensor-parallel-size", "`tensor_parallel_size`"),
    (["--model", "other/model"], "--model", "`model`"),
    (["--uds", "/tmp/v.sock"], "--uds", "unreachable"),
    (["--ssl-certfile", "c.pem"], "--ssl-certfile", "unreachable"),
    (["--headless"], "--headless", "unreachable"),
    (["--grpc"], "--grpc", "unreachable"),
])
def test_vllm_managed_flags_refused_in_every_spelling_vllm_reads(args, flag, key):
    with pytest.raises(BackendError) as ei:
        vllm_argv(vllm(extra_args=["--enforce-eager", *args]), 8000)
    msg = str(ei.value)
    assert msg.startswith(f"vLLM extra_args: {flag}") and key in msg and "\n" not in msg
    given = args[0].split("=", 1)[0]
    assert (f"vLLM reads {given} as {flag}" in msg) == (given != flag)


@pytest.mark.parametrize("args,key", [(["--max-model-len", "auto"], "max_model_len"), (["-q", "awq"], "quantization"),
                                      (["-qawq"], "quantization"), (["--max_num_seqs=8"], "max_num_seqs"),
                                      (["--dtype", "half"], "dtype"),
                                      (["--gpu-memory-utilization", "0.5"], "gpu_memory_utilization")])
def test_vllm_keyed_flags_pass_alone_and_are_refused_beside_their_key(args, key):
    assert vllm_argv(vllm(extra_args=args), 8000)[-len(args):] == args  # e.g. --max-model-len auto: no key says it
    values = {"max_model_len": 4096, "quantization": "awq", "max_num_seqs": 8, "dtype": "half",
              "gpu_memory_utilization": 0.9}
    with pytest.raises(BackendError, match=f"`{key}` key: set it there only"):
        vllm_argv(vllm(extra_args=args, **{key: values[key]}), 8000)


@pytest.mark.parametrize("args", [["--max-num-batched-tokens", "8192"], ["--tokenizer-mode", "auto"],
                                  ["--model-impl", "vllm"], ["--grpc-port", "50051"], ["--hf-token"],
                                  ["--hf-token", "--enforce-eager"], ["--no-enable-log-requests"]])
def test_vllm_other_flags_pass_through(args):
    assert vllm_argv(vllm(extra_args=args), 8000)[-len(args):] == args


@pytest.mark.parametrize("extra", [["--api_key", KEY], [f"--api_key={KEY}"], ["--api-k", KEY], ["--api-key.0", KEY],
                                   ["--hf-token", KEY], [f"--hf_token={KEY}"]])
def test_vllm_secrets_in_any_spelling_refused_when_the_scenario_is_read(extra):
    from harness.config import ConfigError, parse_scenario

    with pytest.raises(ConfigError) as ei:
        parse_scenario({"name": "k", "backend": {"type": "vllm", "model": "m", "extra_args": extra}})
    msg = str(ei.value)
    assert KEY not in msg and "\n" not in msg and ("api_key_env" in msg or "HF_TOKEN" in msg)


def test_vllm_secret_spellings_still_refused_by_the_launcher():
    cfg = vllm().model_copy(update={"extra_args": ["--api_key", KEY]})  # built without validation
    with pytest.raises(BackendError, match="api_key_env") as ei:
        vllm_argv(cfg, 8000)
    assert KEY not in str(ei.value)


@pytest.mark.parametrize("backend", [{"type": "vllm", "model": "m"}, {"type": "tgi", "model_id": "m"},
                                     {"type": "sim"}])
@pytest.mark.parametrize("extra", [["--api-key", KEY], [f"--api-key={KEY}"]])
def test_api_key_on_command_line_refused_when_the_scenario_is_read(backend, extra):
    # Refused by the config, before scenario.yaml (or anything else) is written with the key in it.
    from harness.config import ConfigError, parse_scenario

    with pytest.raises(ConfigError, match="api_key_env") as ei:
        parse_scenario({"name": "k", "backend": {**backend, "extra_args": extra}})
    assert KEY not in str(ei.value) and "\n" not in str(ei.value)


def test_api_key_in_argv_still_refused_by_the_launcher(monkeypatch):
    # Defence in depth: a config built without validation still cannot put the key on the command line.
    cfg = vllm().model_copy(update={"extra_args": ["--api-key", KEY]})
    with pytest.raises(BackendError, match="api_key_env"):
        vllm_argv(cfg, 8000)


def test_managed_port_flag_refused():
    with pytest.raises(BackendError, match="`port` key"):
        vllm_argv(vllm(extra_args=["--port", "1234"]), 8000)
    with pytest.raises(BackendError, match="`port` key"):
        tgi_argv(tgi(extra_args=["-p", "1234"]), 8000)


def test_tgi_native_argv():
    cfg = tgi(num_shard=2, max_concurrent_requests=256, max_batch_total_tokens=32000, max_input_tokens=1000,
              max_total_tokens=2000, quantize="awq", extra_args=["--cuda-graphs", "0"])
    assert tgi_argv(cfg, 8123) == [
        "text-generation-launcher", "--model-id", "org/tiny-model", "--hostname", "127.0.0.1", "--port", "8123",
        "--num-shard", "2", "--max-concurrent-requests", "256", "--max-batch-total-tokens", "32000",
        "--max-input-tokens", "1000", "--max-total-tokens", "2000", "--quantize", "awq", "--cuda-graphs", "0"]
    assert tgi_argv(tgi(), 1) == ["text-generation-launcher", "--model-id", "org/tiny-model",
                                  "--hostname", "127.0.0.1", "--port", "1"]


def test_tgi_docker_argv():
    cfg = tgi(launcher="docker", docker_volume="/srv/hf", api_key_env="MY_KEY", cuda_visible_devices="0,1",
              dtype="bfloat16")
    assert tgi_argv(cfg, 8123) == [
        "docker", "run", "--rm", "--name", "slabench-tgi-8123", "--gpus", '"device=0,1"', "--shm-size", "1g",
        "-p", "127.0.0.1:8123:80", "-v", "/srv/hf:/data", "-e", "API_KEY",
        "ghcr.io/huggingface/text-generation-inference:3.3.5", "--model-id", "org/tiny-model", "--dtype", "bfloat16"]
    plain = tgi_argv(tgi(launcher="docker"), 8123)
    assert plain[plain.index("--gpus") + 1] == "all" and "-v" not in plain and "-e" not in plain


def test_key_goes_by_env_not_argv(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_KEY", KEY)
    v = VllmServer(vllm(api_key_env="MY_KEY", cuda_visible_devices="3"), tmp_path / "v.log")
    env = v.child_env()
    assert env["VLLM_API_KEY"] == KEY and env["CUDA_VISIBLE_DEVICES"] == "3"
    assert KEY not in " ".join(v.child.argv) and KEY not in str(v.describe())
    t = TgiServer(tgi(api_key_env="MY_KEY", cuda_visible_devices="1"), tmp_path / "t.log")
    assert t.child_env()["API_KEY"] == KEY and KEY not in " ".join(t.child.argv)
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    d = TgiServer(tgi(launcher="docker", api_key_env="MY_KEY", cuda_visible_devices="1"), tmp_path / "d.log")
    assert "CUDA_VISIBLE_DEVICES" not in d.child_env()  # docker selects GPUs with --gpus instead
    assert d.child_env()["API_KEY"] == KEY  # read by `docker run -e API_KEY`


def test_missing_key_variable_fails_before_launch(monkeypatch, tmp_path):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    b = VllmServer(vllm(api_key_env="NO_SUCH_KEY_VAR"), tmp_path / "log")
    with pytest.raises(BackendError, match=r"\$NO_SUCH_KEY_VAR, which is not set"):
        with b:
            pass
    assert b.child.proc is None


def test_free_port_is_bindable():
    import socket
    port = free_port()
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))  # raises if something holds it


# ---------------------------------------------------------------- ready paths against the fakes

def test_vllm_ready_with_key_then_stops(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_KEY", KEY)
    cfg = vllm(served_model_name="tiny", tensor_parallel_size=2, gpu_memory_utilization=0.8, max_num_seqs=32,
               max_model_len=2048, quantization="fp8", dtype="bfloat16", api_key_env="MY_KEY", gpu="h100-sxm",
               cuda_visible_devices="0,1", extra_args=["--enable-log-requests"])
    b = make_backend(cfg, tmp_path / "vllm.log")
    assert isinstance(b, VllmServer)
    with b:
        pid = launched_pid(b)
        d = b.describe()
        assert b.url == f"http://127.0.0.1:{b.port}" and b.model == "tiny"
        assert d["type"] == "vllm" and d["gpu"] == "h100-sxm" and d["gpu_count"] == 2
        assert d["version"] == "0.33.0" and d["simulated"] is False and d["command"][:3] == ["vllm", "serve", "org/tiny-model"]
        # The fake guards /v1 with the key, so ready means the key arrived by env and our probe sent it.
        assert "api key on" in (tmp_path / "vllm.log").read_text()
        assert KEY.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert b"CUDA_VISIBLE_DEVICES=0,1" in environ
        assert b.poll_crash() is None
    assert group_alive(pid) == []
    assert b.poll_crash() is not None  # stopped: the process is gone


def test_vllm_served_name_defaults_to_model(tmp_path):
    with make_backend(vllm(), tmp_path / "log") as b:
        assert b.model == "org/tiny-model"


def test_vllm_key_in_shell_without_api_key_env_is_named(monkeypatch, tmp_path):
    monkeypatch.setenv("VLLM_API_KEY", KEY)  # inherited by the child, unknown to the harness
    b = make_backend(vllm(), tmp_path / "log")
    with pytest.raises(BackendError, match="401.*api_key_env"):
        with b:
            pass
    assert group_alive(launched_pid(b)) == []


def test_tgi_native_ready(monkeypatch, tmp_path):
    monkeypatch.setenv("MY_KEY", KEY)
    cfg = tgi(num_shard=2, max_input_tokens=1000, max_total_tokens=2000, quantize="awq", api_key_env="MY_KEY")
    b = make_backend(cfg, tmp_path / "tgi.log")
    assert isinstance(b, TgiServer)
    with b:
        pid = launched_pid(b)
        d = b.describe()
        assert b.model == "org/tiny-model" and d["type"] == "tgi" and d["gpu_count"] == 2 and d["version"] == "3.3.5"
        assert b"API_KEY=" + KEY.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert KEY.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
    assert group_alive(pid) == []


def test_tgi_docker_ready_and_docker_stop(monkeypatch, tmp_path):
    log = tmp_path / "docker.log"
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(log))
    monkeypatch.setenv("MY_KEY", KEY)
    b = make_backend(tgi(launcher="docker", docker_volume=str(tmp_path), api_key_env="MY_KEY"), tmp_path / "t.log")
    with b:
        pid = launched_pid(b)
        assert b.model == "org/tiny-model" and b.describe()["gpu_count"] == 1
        assert b.describe()["command"][:2] == ["docker", "run"]
        # `-e API_KEY` carried the value into the "container" (the fake passes only -e variables on).
        assert b"API_KEY=" + KEY.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert not log.exists()
    b.stop()  # twice is safe; docker stop runs once
    assert log.read_text().splitlines() == [f"stop -t 10 slabench-tgi-{b.port}"]
    assert group_alive(pid) == []


# ---------------------------------------------------------------- failures

@pytest.mark.parametrize("make", [vllm, tgi])
def test_crash_at_start_fails_fast_with_oom_line(make, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", "crash")
    b = make_backend(make(startup_timeout_s=60), tmp_path / "log")
    t0 = time.monotonic()
    with pytest.raises(BackendError) as ei:
        with b:
            pass
    assert time.monotonic() - t0 < 10  # not the 60 s timeout
    msg = str(ei.value)
    assert "exited with code 1" in msg and "torch.OutOfMemoryError: CUDA out of memory" in msg


def test_unknown_flag_fails_like_real_vllm(tmp_path):
    b = make_backend(vllm(extra_args=["--no-such-flag"]), tmp_path / "log")
    with pytest.raises(BackendError, match="(?s)exited with code 2.*unrecognized arguments: --no-such-flag"):
        with b:
            pass


@pytest.mark.parametrize("mode", ["hang", "never_ready"])
@pytest.mark.parametrize("make", [vllm, tgi])
def test_not_ready_times_out_with_log_tail_and_no_process_left(make, mode, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", mode)
    b = make_backend(make(startup_timeout_s=1), tmp_path / "log")
    with pytest.raises(BackendError) as ei:
        with b:
            pass
    msg = str(ei.value)
    assert "did not become ready within 1 s" in msg and "startup_timeout_s" in msg
    assert ("never binds" if mode == "hang" else "listening on") in msg  # the log tail
    assert ("HTTP 503" in msg) == (mode == "never_ready")
    assert group_alive(launched_pid(b)) == []


@pytest.mark.parametrize("make", [vllm, lambda **kw: tgi(launcher="docker", **kw)])
def test_crash_after_ready_detected_by_poll_crash(make, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", "crash_after_ready")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker.log"))
    with make_backend(make(), tmp_path / "log") as b:
        assert b.poll_crash() is None
        assert wait_until(lambda: b.poll_crash() is not None, 10)
        msg = b.poll_crash()
        assert "exited with code 1" in msg and "engine core died" in msg


def test_wrong_server_on_fixed_port_is_caught(monkeypatch, tmp_path):
    # A TGI fake already holds the port: the fixed-port check refuses to launch a second server there.
    first = make_backend(tgi(model_id="other/model"), tmp_path / "a.log")
    with first:
        b = make_backend(vllm(port=first.port), tmp_path / "b.log")
        with pytest.raises(BackendError, match=f"port {first.port} .* already in use"):
            with b:
                pass
        assert b.child.proc is None
        # Should the port be taken between check and bind, the model check still tells the servers apart.
        monkeypatch.setattr("harness.backends.launched.port_in_use", lambda port: False)
        monkeypatch.setenv("FAKE_MODE", "hang")  # ours never answers; the other server does
        b = make_backend(vllm(port=first.port), tmp_path / "c.log")
        with pytest.raises(BackendError, match=r"serves \['other/model'\], not 'org/tiny-model'"):
            with b:
                pass
        assert group_alive(launched_pid(b)) == []


@pytest.mark.parametrize("make", [vllm, lambda **kw: tgi(launcher="docker", **kw)])
def test_ctrl_c_while_waiting_leaves_no_process(make, monkeypatch, tmp_path):
    monkeypatch.setenv("FAKE_MODE", "never_ready")
    monkeypatch.setenv("FAKE_DOCKER_LOG", str(tmp_path / "docker.log"))
    polls = []

    def sleep(_s):  # the readiness poll's sleep: the 3rd one is where the user presses Ctrl-C
        polls.append(_s)
        if len(polls) == 3:
            raise KeyboardInterrupt
        time.sleep(_s)

    cfg = make(startup_timeout_s=30)
    b = (VllmServer if isinstance(cfg, VllmBackend) else TgiServer)(cfg, tmp_path / "log", sleep=sleep)
    with pytest.raises(KeyboardInterrupt):
        with b:
            pass
    assert len(polls) == 3
    assert group_alive(launched_pid(b)) == []
    if isinstance(cfg, TgiBackend):
        assert (tmp_path / "docker.log").read_text().startswith("stop ")
