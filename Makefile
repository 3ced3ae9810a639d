# rnn-parity: `make run` and `make test` work on a machine with only Python >= 3.10 and make.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export TF_CPP_MIN_LOG_LEVEL ?= 3
export KERAS_BACKEND ?= tensorflow

.PHONY: install run test bench lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev,plot,keras2]"
	touch $(STAMP)

run: install
	$(BIN)/rnn-parity check

# The unit tests, the example notebooks (executed by nbmake), then the project's own gate
# (configs/ci.yaml), whose JUnit XML lands in reports/.
test: install
	$(BIN)/python -m pytest
	$(BIN)/python -m pytest --nbmake examples
	$(BIN)/rnn-parity sweep configs/ci.yaml --junit-xml reports/ci.xml --json reports/ci.json

bench: install
	$(BIN)/python bench/bench.py
	$(BIN)/python bench/bench_sweep.py
	$(BIN)/python bench/bench_grad.py

lint: install
	$(BIN)/ruff check rnn_parity tests bench
	$(BIN)/ruff format --check rnn_parity tests bench

format: install
	$(BIN)/ruff format rnn_parity tests bench
	$(BIN)/ruff check --fix rnn_parity tests bench

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache .hypothesis reports
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
