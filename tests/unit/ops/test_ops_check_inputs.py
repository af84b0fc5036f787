"""`slabench check` inputs: URLs as people type them, bounded numbers, paths that must exist (one-line
error, exit 2, nothing probed or written), help for every option, fresh default output folders."""

import argparse
from datetime import datetime, timezone
from pathlib import Path

import pytest

from harness import cli
from harness.ops.check import default_out_dir, main_check
from harness.ops.probes import base_url
from harness.telemetry import check as gpu_check

NOW = datetime(2026, 12, 3, 14, 0, 5, tzinfo=timezone.utc)


@pytest.mark.parametrize("typed,base,note", [
    ("http://127.0.0.1:8000", "http://127.0.0.1:8000", None),
    ("https://llm.example.com/", "https://llm.example.com", None),
    ("http://h:8000/v1/", "http://h:8000", "ends in /v1"),
    ("http://h:8000/v1/chat/completions", "http://h:8000", "ends in /v1/chat/completions"),
    ("http://gw.example.com/team-a/v1", "http://gw.example.com/team-a", "ends in /v1"),
    ("http://h:8000/health", "http://h:8000", "ends in /health"),
])
def test_base_url_trims_pasted_endpoints(typed, base, note):
    got, why = base_url(typed)
    assert got == base and (why is None if note is None else note in why)


@pytest.mark.parametrize("typed,problem", [
    ("localhost:8000", "no scheme: did you mean http://localhost:8000"),
    ("ftp://h", "must start with http:// or https://"),
    ("http://:8000", "has no host"),
    ("http://h:99999", "invalid port"),
    ("http://bob:pw@h:8000", "user:password@"),
    ("http://h:8000/?x=1", "?query or #fragment"),
])
def test_bad_urls_are_one_line_errors(typed, problem):
    with pytest.raises(ValueError) as exc:
        base_url(typed)
    assert problem in str(exc.value) and "\n" not in str(exc.value)


def run(tmp_path, *args, **kw):
    printed, errors = [], []
    code = main_check(*args, out_dir=tmp_path / "out", echo=printed.append, err=errors.append, **kw)
    return code, printed, errors


@pytest.mark.parametrize("kw,problem", [
    ({"probe_requests": 0}, "--probe-requests 0: give 1 to 1000"),
    ({"probe_requests": 1001}, "--probe-requests 1001: give 1 to 1000"),
    ({"burst": -1}, "--burst -1: give 0 (no rate-limit probe) to 500"),
    ({"burst": 501}, "--burst 501"),
    ({"gpu": "rtx-9090"}, "--gpu rtx-9090: no price known for it; use one of t4,"),
    ({"run_dir": Path("no/such/run")}, "--run-dir no/such/run: no such folder"),
    ({"alert_rules": Path("no-rules.yaml")}, "--alert-rules no-rules.yaml: no such file"),
    ({"dashboard": Path("no-dash.json")}, "--dashboard no-dash.json: no such file"),
    ({"api_key_env": "SLABENCH_TEST_SURELY_UNSET"}, "SLABENCH_TEST_SURELY_UNSET: that environment variable"),
    ({"sla": "no-such-policy"}, "SLA policy 'no-such-policy' not found"),
])
def test_bad_arguments_exit_2_before_any_traffic(tmp_path, kw, problem):
    code, printed, errors = run(tmp_path, "http://127.0.0.1:1", **kw)
    assert code == 2 and len(errors) == 1 and problem in errors[0] and errors[0].startswith("slabench: error: ")
    assert printed == [] and not (tmp_path / "out").exists()  # nothing probed, nothing written


def test_a_folder_where_a_file_belongs(tmp_path):
    code, _, errors = run(tmp_path, "http://127.0.0.1:1", alert_rules=tmp_path)
    assert code == 2 and "is a folder, not a file" in errors[0]


def test_url_without_scheme_via_the_cli(capsys):
    assert cli.main(["check", "localhost:8000"]) == 2
    err = capsys.readouterr().err
    assert err.strip() == "slabench: error: URL 'localhost:8000' has no scheme: did you mean http://localhost:8000 ?"


def _subparser(name: str) -> argparse.ArgumentParser:
    sub = next(a for a in cli._parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sub.choices[name]


@pytest.mark.parametrize("command", ["check", "alerts"])
def test_every_check_and_alerts_option_has_help(command):
    p = _subparser(command)
    for action in p._actions:
        assert action.help and len(action.help) > 15, (command, action.dest)
    if command == "check":
        text = p.format_help()
        for words in ("default 20", "INCONCLUSIVE", "default 50", "--alert-rules FILE", "--dashboard FILE",
                      "base URL", "reports/check-<UTC"):
            assert words in " ".join(text.split()), words


def test_check_out_dirs_never_shared_in_one_second(tmp_path):
    a, b = default_out_dir(NOW, tmp_path), default_out_dir(NOW, tmp_path)
    assert a != b and a.is_dir() and b.is_dir()
    assert (a.name, b.name) == ("check-20261203T140005Z", "check-20261203T140005Z-2")


def test_gpu_check_out_dirs_never_shared_and_keep_out(tmp_path, monkeypatch):
    monkeypatch.delenv("OUT", raising=False)
    a, b = gpu_check.default_out_dir(tmp_path, NOW), gpu_check.default_out_dir(tmp_path, NOW)
    assert a != b and a.is_dir() and b.is_dir() and b.name == "gpu_check-20261203T140005Z-2"
    monkeypatch.setenv("OUT", str(tmp_path / "device-out"))
    assert gpu_check.default_out_dir(tmp_path, NOW) == tmp_path / "device-out" / "gpu_check"
