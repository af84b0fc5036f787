"""The CLI under fuzzing: generated scenario, SLA, dataset and run-folder inputs through `slabench`.

`drive(argv)` runs `harness.cli.main` in this process with stdout/stderr captured and checks the
contract every input must keep: exit code in {0, 1, 2}, no traceback, bounded time, and exit 1
only after a valid run. `fake_stages` swaps the backend and the load (which would launch a server
and send traffic for the scenario's duration) for one that writes generated records, so every
other stage of `slabench run` — parsing, the run folder, scoring, every report — runs for real.
"""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness.load.locust_runner import LoadOutcome
from harness.records import REQUESTS_FILE

MAX_EXAMPLE_S = 60.0  # one CLI call on a small input; a hang is a finding


@dataclass
class Tally:
    """Exit codes seen per command, for the printed summary of `make fuzz`."""

    codes: Counter = field(default_factory=Counter)

    def add(self, command: str, rc: int) -> None:
        self.codes[(command, rc)] += 1

    def lines(self) -> list[str]:
        commands = sorted({c for c, _ in self.codes})
        return [f"{c:8s} " + "  ".join(f"exit {rc}: {self.codes[(c, rc)]}" for rc in (0, 1, 2, 130)
                                          if self.codes[(c, rc)]) for c in commands]


class FakeBackend:
    """Stands where a launched server would: ready at once, never crashes."""

    url, model = "http://127.0.0.1:9", "fuzz-model"

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return None

    def describe(self) -> dict:
        return {"type": "sim", "url": self.url, "model": self.model, "simulated": True, "gpu": "a100-80gb",
                "gpu_count": 1, "command": ["fake"]}

    def poll_crash(self):
        return None


class FakeTelemetry:
    def __init__(self, *a, **kw):
        pass

    def start(self) -> None:
        pass

    def stop(self, run_dir) -> dict:
        return {"gpu": "none", "server": "none"}


def fake_stages(monkeypatch, records: list[dict], load_window_s: tuple[float, float] = (100.0, 110.0)):
    """Patch harness.runner so `slabench run` writes `records` instead of launching and loading."""
    import harness.runner as runner

    def fake_run_load(scn, url, model, run_dir, **_kw):
        with open(Path(run_dir) / REQUESTS_FILE, "w", encoding="utf-8") as fh:
            for r in records:
                fh.write(json.dumps(r) + "\n")
        start, end = load_window_s
        return LoadOutcome(0, "completed", {"load_start_s": start, "load_end_s": end, "load_start_unix_s": 1e9})

    monkeypatch.setattr(runner, "make_backend", lambda cfg, log: FakeBackend())
    monkeypatch.setattr(runner, "run_load", fake_run_load)
    monkeypatch.setattr(runner, "TelemetrySession", FakeTelemetry)


def no_plots(run, summary) -> dict:
    return {"distributions": {}, "timeseries": None}


def maybe_without_plots(monkeypatch, draw_plots: bool) -> None:
    """Plots are most of a report's cost (~1 s): drawn for a share of the examples, stubbed for the rest."""
    if not draw_plots:
        monkeypatch.setattr("harness.report.html.build_plots", no_plots)


def drive(argv: list[str], tally: Tally | None = None, out_dir: Path | None = None) -> tuple[int, str, str]:
    """Run the CLI in-process and assert the contract; returns (exit code, stdout, stderr)."""
    from harness.cli import main

    out, err = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            rc = main(argv)
        except SystemExit as exc:  # argparse usage errors
            rc = exc.code if isinstance(exc.code, int) else 2
    took_s = time.perf_counter() - t0
    stdout, stderr = out.getvalue(), err.getvalue()
    where = f"argv={argv}\nstdout={stdout[-1500:]}\nstderr={stderr[-1500:]}"
    assert rc in (0, 1, 2), f"exit {rc}: {where}"
    assert "Traceback" not in stdout + stderr, where
    assert "internal error" not in stderr, where
    if rc == 2:
        errors = [ln for ln in stderr.splitlines() if ln.startswith("slabench: error:") or ln.startswith("usage:")]
        assert errors, f"exit 2 without a one-line reason: {where}"
    if rc == 1:
        assert out_dir is not None, where
        summary = json.loads((out_dir / "summary.json").read_text(encoding="utf-8"))
        assert (summary.get("validity") or {}).get("valid", True), f"exit 1 after an invalid run: {where}"
    assert took_s < MAX_EXAMPLE_S, f"took {took_s:.1f} s: {where}"
    if tally is not None:
        tally.add(argv[0], rc)
    return rc, stdout, stderr
