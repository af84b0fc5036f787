"""The built wheel works outside the clone: locustfiles and SLA presets ship in the package.

Builds the wheel, installs it (no dependencies) into a fresh venv whose dependencies come from this
test environment through a .pth line (so the test needs no network and takes seconds; the .pth adds
a plain path, so this environment's editable slabench is not picked up), then runs `slabench` from
an empty temporary folder: the version, the SLA presets, one short run on the sim, and `slabench init`
with a short run of the starter it writes.
"""

import json
import os
import site
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    build = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q",
                            "-w", str(tmp / "dist"), str(ROOT)], capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next((tmp / "dist").glob("slabench-*.whl"))
    env_dir = tmp / "venv"
    venv.create(env_dir, with_pip=False)
    py = env_dir / "bin" / "python"
    purelib = Path(subprocess.check_output([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                           text=True).strip())
    deps = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (purelib / "zz_test_deps.pth").write_text("\n".join(deps) + "\n")
    inst = subprocess.run([sys.executable, "-m", "pip", "--python", str(py), "install", "--no-deps", "-q", str(wheel)],
                          capture_output=True, text=True, timeout=300)
    if inst.returncode != 0 and "no such option: --python" in inst.stderr:  # pip < 22.3
        inst = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(purelib),
                               str(wheel)], capture_output=True, text=True, timeout=300)
    assert inst.returncode == 0, inst.stderr[-2000:]
    elsewhere = tmp / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    return env_dir / "bin" / "slabench", elsewhere, env, purelib


def test_the_package_is_the_wheel_not_the_clone(installed):
    exe, cwd, env, purelib = installed
    where = subprocess.check_output([str(exe.parent / "python"), "-c", "import harness; print(harness.__file__)"],
                                    cwd=cwd, env=env, text=True).strip()
    assert where.startswith(str(purelib)), where
    assert (purelib / "harness" / "locustfiles" / "openai_chat.py").is_file()
    assert (purelib / "harness" / "data" / "sla" / "guide.yaml").is_file()


def test_presets_are_found_from_any_folder(installed):
    exe, cwd, env, _ = installed
    version = subprocess.run([str(exe), "--version"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.startswith("slabench 0."), version.stdout + version.stderr
    res = subprocess.run([str(exe), "alerts", "guide"], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "groups:" in res.stdout


def test_a_short_run_from_another_folder(installed):
    exe, cwd, env, _ = installed
    (cwd / "s.yaml").write_text("""
name: wheel
backend: {type: sim, fixed_ttft_ms: 20, fixed_itl_ms: 5}
load: {api: openai-chat, users: 2, duration_s: 3}
workload: {prompt_tokens: 8, output_tokens: 8}
sla: guide
""")
    res = subprocess.run([str(exe), "run", "s.yaml", "--out", "run"], cwd=cwd, env=env, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode in (0, 1), res.stdout[-2000:] + res.stderr[-2000:]
    out = cwd / "run"
    summary = json.loads((out / "summary.json").read_text())
    assert summary["validity"]["valid"] and summary["counts"]["ok"] > 10
    assert (out / "report.html").is_file() and (out / "requests.jsonl").stat().st_size > 0


def test_init_then_run_from_an_empty_folder(installed):
    """`slabench init` works from the wheel (its templates are package data) and its starter runs."""
    exe, cwd, env, _ = installed
    empty = cwd / "empty"
    empty.mkdir()
    res = subprocess.run([str(exe), "init"], cwd=empty, env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert sorted(p.name for p in empty.iterdir()) == ["scenario.schema.json", "scenario.yaml", "sla.yaml"]
    scenario = empty / "scenario.yaml"
    text = scenario.read_text()  # the starter says 30 s: this copy runs for 3
    short = text.replace("duration_s: 30", "duration_s: 3").replace("warmup_s: 5 ", "warmup_s: 1 ")
    assert short != text
    scenario.write_text(short)
    res = subprocess.run([str(exe), "run", "scenario.yaml", "--out", "run"], cwd=empty, env=env, capture_output=True,
                         text=True, timeout=180)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    summary = json.loads((empty / "run" / "summary.json").read_text())
    assert summary["validity"]["valid"] and summary["counts"]["ok"] > 0
    assert "SLA 'starter'" in res.stdout  # scored against the sla.yaml init wrote, not a shipped preset
    again = subprocess.run([str(exe), "init"], cwd=empty, env=env, capture_output=True, text=True, timeout=60)
    assert again.returncode == 2
    assert again.stderr == "slabench: error: scenario.yaml exists: choose another folder or remove it\n"
