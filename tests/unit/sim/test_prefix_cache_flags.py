"""Prefix caching switches: vLLM's --[no-]enable-prefix-caching, the TGI flavor's --[no-]prefix-caching
and PREFIX_CACHING, the scenario field that sets them, and the scheduler config they reach."""

from __future__ import annotations

import pytest

from harness.backends.sim import sim_argv
from harness.config import SimBackend
from harness.sim import cli
from harness.sim.catalog import SimConfigError
from harness.sim.server import build_server


@pytest.mark.parametrize("argv, env, on", [
    (["--flavor", "vllm"], None, True),  # vLLM's default
    (["--flavor", "vllm", "--no-enable-prefix-caching"], None, False),
    (["--flavor", "vllm", "--enable-prefix-caching"], "0", True),  # TGI's variable means nothing to vLLM
    (["--flavor", "tgi"], None, True),  # TGI 3's default with flashinfer / flashdecoding
    (["--flavor", "tgi"], "0", False),
    (["--flavor", "tgi"], "false", False),
    (["--flavor", "tgi"], "TRUE", True),
    (["--flavor", "tgi"], "1", True),
    (["--flavor", "tgi"], "yes", False),  # TGI reads only "1" / "true" as on
    (["--flavor", "tgi", "--prefix-caching"], "0", True),  # the flag wins over the variable
    (["--flavor", "tgi", "--no-prefix-caching"], None, False),
])
def test_switches_reach_the_scheduler(monkeypatch, argv, env, on):
    if env is None:
        monkeypatch.delenv("PREFIX_CACHING", raising=False)
    else:
        monkeypatch.setenv("PREFIX_CACHING", env)
    opts = cli.parse_serve_options(argv)
    assert opts.prefix_caching is on
    server = build_server(opts)
    assert server.ctx.engine.sched.cfg.prefix_caching is on
    assert server.ctx.engine.prefix_caching is on


@pytest.mark.parametrize("argv, hint", [
    (["--flavor", "tgi", "--no-enable-prefix-caching"], "--no-prefix-caching"),
    (["--flavor", "vllm", "--no-prefix-caching"], "--no-enable-prefix-caching"),
])
def test_the_other_flavors_flag_is_refused_in_one_line(capsys, argv, hint):
    with pytest.raises(SimConfigError, match=hint):
        cli.parse_serve_options(argv)
    assert cli.main(["serve", *argv]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and hint in err and "Traceback" not in err


@pytest.mark.parametrize("flavor, value, flag", [
    ("vllm", True, "--enable-prefix-caching"), ("vllm", False, "--no-enable-prefix-caching"),
    ("tgi", True, "--prefix-caching"), ("tgi", False, "--no-prefix-caching"), ("vllm", None, None),
])
def test_scenario_field_becomes_the_flavors_flag(monkeypatch, flavor, value, flag):
    monkeypatch.delenv("PREFIX_CACHING", raising=False)
    argv = sim_argv(SimBackend(flavor=flavor, prefix_caching=value))
    assert [a for a in argv if "prefix-caching" in a] == ([flag] if flag else [])
    assert cli.parse_serve_options(argv[3:]).prefix_caching is (value is not False)


def test_calibration_mode_models_no_cache():
    server = build_server(cli.parse_serve_options(["--fixed-ttft-ms", "1", "--fixed-itl-ms", "1"]))
    assert server.ctx.engine.prefix_caching is False
