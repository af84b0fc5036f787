"""Scenario and SLA files fail closed (issue #12): every bad file or value is one ConfigError line.

Regressions for each reproduction in the issue, then properties over generated files
(tests/fuzzing/inputs.py): a loader returns a model or raises a one-line ConfigError, nothing else.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness.config import (MAX_SCHEDULED_REQUESTS, ConfigError, ExternalBackend, SimBackend, SlaPolicy,
                            load_scenario, load_sla, parse_scenario, resolve_scenario)
from harness.config.errors import MAX_CONFIG_BYTES, one_line, validation_message
from tests.fuzzing.inputs import scenario_files, sla_files, valid_policy_docs, valid_scenario_docs

QUICK = settings(max_examples=100, deadline=None, database=None, derandomize=True,
                 suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                        HealthCheck.filter_too_much, HealthCheck.large_base_example])


def one_line_error(fn, *args) -> str:
    with pytest.raises(ConfigError) as ei:
        fn(*args)
    msg = str(ei.value)
    assert msg and msg.splitlines() == [msg], msg
    return msg


def scenario_error(tmp_path: Path, text: str | bytes) -> str:
    p = tmp_path / "s.yaml"
    p.write_bytes(text.encode("utf-8") if isinstance(text, str) else text)
    return one_line_error(load_scenario, p)


# ---------------------------------------------------------------- numbers: finite and bounded

@pytest.mark.parametrize("yaml_text,expect", [
    ("load: {duration_s: .inf}", "s.yaml: load.duration_s: must be a finite number, got inf"),
    ("load: {duration_s: .nan}", "s.yaml: load.duration_s: must be a finite number, got nan"),
    ("load: {mode: open, rate_rps: 1e9}", "s.yaml: load.rate_rps: 1e9 is over the limit (<= 100000)"),
    ("load: {mode: open, rate_rps: 1, arrival: gamma, burstiness: .inf}", "load.burstiness: must be a finite number"),
    ("load: {mode: open, rate_rps: 1, burstiness: 1e-9}", "load.burstiness: must be >= 0.01, got 1e-9"),
    ("backend: {speed: 1e-300}", "s.yaml: backend.speed: must be >= 0.001, got 1e-300"),
    ("backend: {speed: 1e9}", "backend.speed: 1e9 is over the limit (<= 1e+06)"),
    ("backend: {fixed_ttft_ms: .inf, fixed_itl_ms: 1}", "backend.fixed_ttft_ms: must be a finite number, got inf"),
    ("backend: {fixed_ttft_ms: 1, fixed_itl_ms: .nan}", "backend.fixed_itl_ms: must be a finite number, got nan"),
    ("sla: {name: p, rows: [{metric: ttft_s, stat: p99, target: .nan, alert: .nan}]}",
     "sla.rows.0.target: must be a finite number, got nan"),
    ("load: {users: .inf}", "load.users: must be a finite number"),
    ("load: {users: 1000000}", "load.users: 1000000 is over the limit (<= 10000)"),
    ("load: {duration_s: 1e7}", "load.duration_s: 1e7 is over the limit (<= 604800)"),
    ("workload: {prompt_tokens: 100000000}", "workload.prompt_tokens.value: 100000000 is over the limit"),
    ("workload: {seed: 100000000000000000000}", "workload.seed: 100000000000000000000 is over the limit"),
    ("workload: {prompt_tokens: {dist: lognormal, mean: 1e-300, stddev: 1e6}}", "prompt_tokens.mean: must be >= 1"),
    ("cost: {gpu_price_usd_per_hour: .inf}", "cost.gpu_price_usd_per_hour: must be a finite number"),
    ("load: {timeout_s: 1e12}", "load.timeout_s: 1e12 is over the limit"),
    ("backend: {type: vllm, model: m, gpu_memory_utilization: .nan}",
     "backend.gpu_memory_utilization: must be a finite"),
    ("backend: {type: tgi, model_id: m, max_total_tokens: 100000000000}",
     "backend.max_total_tokens: 100000000000 is over"),
])
def test_nan_infinity_and_absurd_numbers_are_one_line_errors(tmp_path, yaml_text, expect):
    msg = scenario_error(tmp_path, f"name: x\n{yaml_text}\n")
    assert expect in msg


def test_an_open_loop_schedule_is_bounded_by_rate_times_duration():
    data = {"name": "x", "load": {"mode": "open", "rate_rps": 10_000, "duration_s": 600_000}}
    msg = one_line_error(parse_scenario, data)
    assert f"over the {MAX_SCHEDULED_REQUESTS:,} one run records" in msg and "set max_requests" in msg
    data["load"]["max_requests"] = 1000  # the schedule stops there
    assert parse_scenario(data).load.max_requests == 1000
    stages = [{"duration_s": 500_000, "rate_rps": 0}] * 2
    assert "over the 604800 s (7 day) limit" in one_line_error(
        parse_scenario, {"name": "x", "load": {"mode": "open", "stages": stages}})


def test_limits_admit_what_real_tests_use():
    s = parse_scenario({"name": "soak", "load": {"mode": "open", "rate_rps": 100, "duration_s": 6 * 3600},
                        "backend": {"speed": 1e-3, "fixed_ttft_ms": 0, "fixed_itl_ms": 0},
                        "workload": {"prompt_tokens": 128_000, "seed": 2**63 - 1}})
    assert (s.load.duration_s, s.backend.speed, s.workload.prompt_tokens.value) == (21600, 1e-3, 128_000)


def test_backend_models_refuse_nan_outside_a_file_too():
    with pytest.raises(ValueError, match="finite number"):
        SimBackend(speed=float("nan"))
    with pytest.raises(ValueError, match="greater than or equal to 0.001"):
        SimBackend(speed=1e-300)


# ---------------------------------------------------------------- files: type, size, encoding, nesting

def test_non_utf8_and_utf16_files_name_the_file_and_the_fix(tmp_path):
    assert scenario_error(tmp_path, "name: x\n".encode("utf-16")) == f"{tmp_path}/s.yaml: is UTF-16 (or UTF-32) " \
                                                                    "text: save it as UTF-8"
    assert scenario_error(tmp_path, b"name: x\ndescription: caf\xe9\n") == \
        f"{tmp_path}/s.yaml:2: not UTF-8 text (byte 0xe9): save the file as UTF-8"
    assert "contains NUL bytes" in scenario_error(tmp_path, "name: x\n".encode("utf-16-le"))
    p = tmp_path / "bom.yaml"
    p.write_bytes(b"\xef\xbb\xbfname: bom\n")  # UTF-8 with a BOM is UTF-8
    assert load_scenario(p).name == "bom"


@pytest.mark.parametrize("ref", ["x" * 5000, "x" * 5000 + ".yaml", "a\x00b.yaml", "/proc/self/mem.yaml", ""])
def test_odd_sla_references_are_not_found_in_one_line(ref):
    assert "not found: give a .yaml path or a name from scenarios/sla/" in one_line_error(load_sla, ref)


def test_sla_files_are_read_the_same_way(tmp_path):
    p = tmp_path / "p.yaml"
    p.write_bytes("name: p\n".encode("utf-16"))
    assert "is UTF-16" in one_line_error(load_sla, p)
    p.write_text("name: p\nrows: [{metric: ttft_s, stat: p99, target: .nan, alert: 1}]\n")
    assert "rows.0.target: must be a finite number" in one_line_error(load_sla, p)
    d = tmp_path / "dir.yaml"
    d.mkdir()
    assert "is a folder, not a SLA policy file" in one_line_error(load_sla, d)


@pytest.mark.parametrize("nesting", ["[" * 1000 + "]" * 1000, "{a: " * 1000 + "1" + "}" * 1000])
def test_deep_nesting_is_refused_before_the_recursive_parse(tmp_path, nesting):
    msg = scenario_error(tmp_path, f"name: x\nload: {nesting}\n")
    assert "nested more than 64 levels deep" in msg and msg.startswith(f"{tmp_path}/s.yaml:2:")


def test_block_nesting_too(tmp_path):
    text = "name: x\n" + "".join("  " * i + f"k{i}:\n" for i in range(200))
    assert "nested more than 64 levels deep" in scenario_error(tmp_path, text)


def test_alias_bombs_cannot_blow_up_memory(tmp_path):
    lines = ['a0: &a0 ["lol"]'] + [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 10)]
    msg = scenario_error(tmp_path, "\n".join(["name: x", *lines, "load: *a9"]) + "\n")
    assert "expands to over 200,000 values (YAML aliases?)" in msg
    assert "refers to a value containing itself" in scenario_error(tmp_path, "name: x\nload: &a {x: *a}\n")
    # A few ordinary aliases are fine.
    ok = "name: x\nrows: &r [{metric: ttft_s, stat: p99, target: 1, alert: 2}]\nsla: {name: p, rows: *r}\n"
    assert "unknown key 'rows'" in scenario_error(tmp_path, ok)  # parsed; only the stray key is wrong


def test_folders_devices_fifos_and_big_files_are_refused_before_reading(tmp_path):
    assert one_line_error(load_scenario, tmp_path) == f"{tmp_path}: is a folder, not a scenario file " \
                                                      "(give the path of the file inside it)"
    assert one_line_error(load_scenario, "/dev/zero") == "/dev/zero: is a device, not a regular scenario file " \
                                                         "(give the path of a file on disk)"
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)  # nobody writes to it: opening it must not wait
    assert "is a FIFO, not a regular scenario file" in one_line_error(load_scenario, fifo)
    big = tmp_path / "big.yaml"
    with open(big, "wb") as fh:
        fh.write(b"name: x\n# " + b"x" * MAX_CONFIG_BYTES)
    assert "larger than the 10.4858 MB limit for a scenario file" in one_line_error(load_scenario, big)


@pytest.mark.parametrize("text,expect", [
    ("name: x\ncost: {price_set_on: 2024-02-30}\n", "a value cannot be read (day is out of range for month)"),
    ("name: x\nworkload: {seed: " + "9" * 5000 + "}\n", "Exceeds the limit (4300 digits)"),
    ("!!python/object/apply:os.system ['true']\n", "not valid YAML (could not determine a constructor"),
    ("name: x\n---\nname: y\n", "not valid YAML (expected a single document"),
    ('name: "a\\x00b"\n', "a value contains a NUL character"),
    ('name: "x"\ndescription: "\\ud800"\n', "escape (half a character): write the character itself"),
])
def test_odd_yaml_scalars_and_documents(tmp_path, text, expect):
    assert expect in scenario_error(tmp_path, text)


def test_quoted_user_text_cannot_break_the_line():
    msg = one_line_error(parse_scenario, {"name": "x", "load": {"a\nb\u2028c" * 50: 1}})
    assert msg.startswith("scenario: unknown key 'load.a\\x0ab\\u2028c") and len(msg) < 200
    assert one_line("a\r\nb\x85c\ud800") == "a\\x0d\\x0ab\\x85c\\ud800"
    assert str(ConfigError("two\nlines")) == "two\\x0alines"


# ---------------------------------------------------------------- URLs (backend.url, --target)

@pytest.mark.parametrize("url,expect", [
    ("http://a b", "url 'http://a b' contains a space or control character: remove it (or percent-encode it)"),
    ("http://ünï.example", "url 'http://ünï.example': host 'ünï.example' is not ASCII: use its ASCII (punycode"),
    ("ftp://x", "must start with http:// or https://"),
    ("http://", "has no host"),
    ("http://h:99999", "the port must be a number from 1 to 65535"),
    ("http://h:0", "the port must be a number from 1 to 65535"),
    ("http://h:port", "the port must be a number from 1 to 65535"),
    ("http://u:secret@h:8000", "carries credentials: remove them and put the API key in an environment variable"),
    ("http://h:8000/?x=1", "without '?query' or '#fragment'"),
    ("http://[::1", "is not a valid URL"),
    ("http://a..b", "is not a valid host name"),
    ("http://h:8000/ü", "has non-ASCII characters in its path: percent-encode them"),
])
def test_bad_urls_say_what_is_wrong(url, expect):
    with pytest.raises(ValueError) as ei:
        ExternalBackend(url=url)
    assert expect in validation_message(ei.value)
    assert validation_message(ei.value).splitlines() == [validation_message(ei.value)]


@pytest.mark.parametrize("url,kept", [("http://127.0.0.1:8000/", "http://127.0.0.1:8000"),
                                      ("https://[::1]:8443/v1", "https://[::1]:8443/v1"),
                                      ("http://llm_gateway:80", "http://llm_gateway:80"),
                                      ("http://xn--n-tfa7b.example", "http://xn--n-tfa7b.example")])
def test_good_urls_are_kept(url, kept):
    assert ExternalBackend(url=url).url == kept


def test_target_flag_errors_are_one_line(tmp_path):
    from harness.runner import prepare

    scn = tmp_path / "s.yaml"
    scn.write_text("name: x\n")
    msg = one_line_error(prepare, scn, None, "http://a b")
    assert msg == "--target: url 'http://a b' contains a space or control character: remove it (or percent-encode it)"


@QUICK
@given(st.text(max_size=60) | st.builds(lambda h, p: f"http://{h}:{p}", st.text(max_size=12), st.text(max_size=6)))
def test_any_url_is_accepted_as_ascii_or_refused_in_one_line(url):
    try:
        got = ExternalBackend(url=url).url
    except ValueError as exc:
        msg = validation_message(exc)
        assert msg and msg.splitlines() == [msg] and "errors.pydantic.dev" not in msg
        return
    assert got.startswith(("http://", "https://")) and got.isascii() and not any(c.isspace() for c in got)


# ---------------------------------------------------------------- properties over generated files

def _check_loader(load, data: bytes, name: str):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_bytes(data)
        try:
            return load(path)
        except ConfigError as exc:
            msg = str(exc)
            assert msg and msg.splitlines() == [msg], msg
            msg.encode("utf-8")  # printable: no lone surrogates
            return None


@QUICK
@given(scenario_files())
def test_load_scenario_returns_a_scenario_or_one_line_error(data):
    got = _check_loader(lambda p: resolve_scenario(load_scenario(p), base_dir=p.parent), data, "scenario.yaml")
    assert got is None or isinstance(got.sla, SlaPolicy)


@QUICK
@given(sla_files())
def test_load_sla_returns_a_policy_or_one_line_error(data):
    got = _check_loader(load_sla, data, "policy.yaml")
    assert got is None or isinstance(got, SlaPolicy)


@QUICK
@given(valid_scenario_docs(dataset=False))
def test_valid_scenarios_load_and_resolve(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "scenario.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        scn = resolve_scenario(load_scenario(path))
    assert scn.name == doc["name"] and scn.sla.rows


@QUICK
@given(valid_policy_docs())
def test_valid_policies_load(doc):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "policy.yaml"
        path.write_text(yaml.safe_dump(doc), encoding="utf-8")
        assert len(load_sla(path).rows) == len(doc["rows"])
