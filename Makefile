# jmof: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
REPORT ?= reports/demo

.PHONY: demo test test-all bench install lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default data: CoRE MOF 2019-ASR → crystals → graphs → report.
demo: $(STAMP)
	$(VENV)/bin/jmof data coremof --subset 2019-ASR --report $(REPORT)
	@echo "demo report: $(REPORT)/report.md"

test: $(STAMP)
	$(PY) -m pytest -q

test-all: $(STAMP)
	$(PY) -m pytest -q -m ''

bench: $(STAMP)
	$(PY) experiments/bench_io.py
	$(PY) experiments/bench_neighbors.py
	$(PY) experiments/bench_padding.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
