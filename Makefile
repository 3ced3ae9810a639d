# rnn-parity: `make run` and `make test` work on a machine with only Python >= 3.10 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# The torch extra's range is loose; an unpinned torch resolves to a multi-GB CUDA build, so install the CPU one.
TORCH_CPU ?= torch==2.13.0
export TF_CPP_MIN_LOG_LEVEL ?= 3
export KERAS_BACKEND ?= tensorflow

.PHONY: install run test bench oldest lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet "$(TORCH_CPU)" -e ".[dev,plot,dask,keras2,tensorflow,jax,torch]"
	touch $(STAMP)

run: install
	$(BIN)/rnn-parity check

# The import contracts; the tests that need no Keras, in a process where importing tensorflow, keras,
# jax or torch fails (RNN_PARITY_BLOCK_FRAMEWORKS, read by tests/conftest.py); the whole suite; the
# example notebooks (executed by nbmake); then the project's own gate (configs/ci.yaml), whose JUnit XML
# lands in reports/.
test: install
	$(BIN)/lint-imports --no-logo
	RNN_PARITY_BLOCK_FRAMEWORKS=1 $(BIN)/python -m pytest -m "not keras" -q
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --nbmake examples
	$(BIN)/rnn-parity sweep configs/ci.yaml --junit-xml reports/ci.xml --json reports/ci.json

bench: install
	$(BIN)/python -m pip install --quiet -e ".[bench]"
	$(BIN)/python bench/bench_export.py --variants
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/bench_sweep.py
	$(BIN)/python bench/bench_grad.py
	$(BIN)/python bench/bench_backends.py
	$(BIN)/python bench/bench_dask.py

# The oldest supported pair (Keras 3.5, TensorFlow 2.17) in its own virtualenv: check and a sweep.
OLDEST := .venv-oldest
oldest:
	test -x $(OLDEST)/bin/python || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet "keras==3.5.0" "tensorflow==2.17.*" -e ".[dev]"
	KERAS_BACKEND=tensorflow $(OLDEST)/bin/rnn-parity check --cell lstm --mask post --return-sequences
	KERAS_BACKEND=tensorflow $(OLDEST)/bin/rnn-parity sweep configs/smoke.yaml

lint: install
	$(BIN)/ruff check rnn_parity tests bench
	$(BIN)/ruff format --check rnn_parity tests bench
	$(BIN)/lint-imports --no-logo

format: install
	$(BIN)/ruff format rnn_parity tests bench
	$(BIN)/ruff check --fix rnn_parity tests bench

clean:
	rm -rf $(VENV) $(OLDEST) build *.egg-info .pytest_cache .ruff_cache .hypothesis .import_linter_cache .grimp_cache reports
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
