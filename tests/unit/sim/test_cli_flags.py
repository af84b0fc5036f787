"""`slabench sim serve` flags are finite and bounded (issue #12): one argparse-style line, exit 2.

The bounds equal the scenario's SimBackend bounds, so a valid scenario never launches a sim that
refuses its flags.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.config import backends as cb
from harness.sim import cli
from harness.sim.catalog import SimConfigError


@pytest.mark.parametrize("argv,expect", [
    (["--speed", "1e-300"], "argument --speed: must be >= 0.001 and <= 1e+06, got 1e-300"),
    (["--speed", "nan"], "argument --speed: must be a finite number, got 'nan'"),
    (["--speed", "abc"], "argument --speed: 'abc' is not a number"),
    (["--fixed-ttft-ms", "inf", "--fixed-itl-ms", "1"], "argument --fixed-ttft-ms: must be a finite number, got 'inf'"),
    (["--fault-error-rate", "nan"], "argument --fault-error-rate: must be a finite number"),
    (["--fault-abort-rate", "1.5"], "argument --fault-abort-rate: must be >= 0 and <= 1, got 1.5"),
    (["--fault-stall-s", "inf"], "argument --fault-stall-s: must be a finite number"),
    (["--port", "70000"], "argument --port: must be >= 0 and <= 65,535, got 70000"),
    (["--seed", "1" + "0" * 30], "argument --seed: must be >= -9,223,372,036,854,775,808"),
    (["--max-num-seqs", "0"], "argument --max-num-seqs: must be >= 1"),
    (["--gpu-memory-utilization", "0"], "argument --gpu-memory-utilization: must be > 0 and <= 1, got 0"),
    (["--rate-limit-rps=-inf"], "argument --rate-limit-rps: must be a finite number"),
    (["--speed", "1e9\n"], "argument --speed: must be >= 0.001 and <= 1e+06, got 1e9 "),
    (["--speed", "x\ny"], "argument --speed: 'x\\ny' is not a number"),
])
def test_bad_flags_are_one_line_and_exit_2(capsys, argv, expect):
    with pytest.raises(SystemExit) as ei:
        cli.main(["serve", *argv])
    assert ei.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"slabench-sim: {expect}") and lines[0].endswith("(see --help)")
    with pytest.raises(SimConfigError, match="see slabench sim serve --help"):
        cli.parse_serve_options(argv)  # in-process callers (offline runs) get the same check as an exception


def test_bounds_match_the_scenario_model():
    assert (cli.MIN_SPEED, cli.MAX_SPEED) == (cb.MIN_SPEED, cb.MAX_SPEED)
    assert (cli.MAX_FIXED_MS, cli.MAX_SEED) == (cb.MAX_FIXED_MS, cb.MAX_SEED)
    fields = cb.SimBackend.model_fields
    limits = {m.__class__.__name__: m for m in fields["speed"].metadata}
    assert (limits["Ge"].ge, limits["Le"].le) == (cli.MIN_SPEED, cli.MAX_SPEED)


def test_edge_values_are_accepted():
    opts = cli.parse_serve_options(["--speed", "0.001", "--fixed-ttft-ms", "0", "--fixed-itl-ms", "3600000",
                                    "--fault-error-rate", "1", "--port", "0", "--seed", "-5"])
    assert (opts.speed, opts.fixed_itl_ms, opts.faults.error_rate, opts.seed) == (0.001, 3_600_000.0, 1.0, -5)


FLOAT_FLAGS = ["--speed", "--fixed-ttft-ms", "--fault-error-rate", "--fault-stall-s", "--fault-crash-after-s",
               "--gpu-memory-utilization", "--rate-limit-rps", "--rate-limit-burst"]


@settings(max_examples=100, deadline=None, database=None, derandomize=True)
@given(flag=st.sampled_from(FLOAT_FLAGS),
       value=st.one_of(st.floats().map(repr), st.text(max_size=8), st.sampled_from(["nan", "-inf", "1e999", "0"])))
def test_any_float_flag_value_is_finite_and_in_range_or_refused(flag, value):
    try:
        opts = cli.parse_serve_options([f"{flag}={value}"])
    except SimConfigError as exc:
        assert str(exc).splitlines() == [str(exc)] and flag in str(exc)
        return
    got = {"--speed": opts.speed, "--fixed-ttft-ms": opts.fixed_ttft_ms, "--fault-error-rate": opts.faults.error_rate,
           "--fault-stall-s": opts.faults.stall_s, "--fault-crash-after-s": opts.faults.crash_after_s,
           "--gpu-memory-utilization": opts.gpu_memory_utilization, "--rate-limit-rps": opts.rate_limit_rps,
           "--rate-limit-burst": opts.rate_limit_burst}[flag]
    assert math.isfinite(got) and got >= 0
