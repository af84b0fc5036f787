#!/usr/bin/env bash
# GPU check: the first thing to run on a machine with an NVIDIA GPU (takes about a minute).
# Prints nvidia-smi's view, then runs `python -m harness.telemetry.check`, which reads the same
# numbers through our NvmlSampler, compares them, loads the GPU with a PyTorch matmul loop (if
# torch is importable) for LOAD_S seconds while sampling every 250 ms, and writes gpu.csv and
# gpu_check.json to $OUT/gpu_check/ (when $OUT is set) or reports/gpu_check-<UTC timestamp>/.
# Without a GPU it says "no NVIDIA GPU found: ..." and exits 0. Exit 1 = a check failed.
set -u

cd "$(dirname "$0")/.." || exit 2
if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
LOAD_S="${LOAD_S:-20}"

echo "== nvidia-smi =="
if command -v nvidia-smi >/dev/null 2>&1; then
  timeout 60 nvidia-smi --query-gpu=name,driver_version,utilization.gpu,memory.used,memory.total,power.draw --format=csv \
    || echo "(nvidia-smi failed with exit $?)"
else
  echo "(nvidia-smi not on PATH)"
fi
echo

echo "== NVML via slabench ($PY) =="
# Hard cap well under 8 minutes: a hung driver call must not hang the check.
timeout 420 "$PY" -m harness.telemetry.check --load-s "$LOAD_S" --interval-s 0.25 "$@"
rc=$?
if [ "$rc" -eq 124 ]; then echo "FAIL: the check did not finish within 420 s"; fi
echo; timeout 180 "$PY" scripts/gpu_probe.py --quick --out "${OUT:-reports}/gpu_probe_catalog.yaml" || echo "(gpu_probe failed with exit $?; the check result above stands)"
exit "$rc"
