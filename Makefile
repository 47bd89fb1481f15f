# jmof: the README's two commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
REPORT ?= reports/demo

.PHONY: demo test test-all bench bench-speed install lint clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# The main job on the embedded default data: CoRE MOF 2019-ASR → crystals → graphs → report,
# then a graph network trained on 3,000 of the MOFs (≤ 150 atoms) with its test metrics.
demo: $(STAMP)
	$(VENV)/bin/jmof data coremof --subset 2019-ASR --report $(REPORT)
	$(VENV)/bin/jmof train-predictor --subset 2019-ASR --max-atoms 150 --sample 3000 \
		--targets LCD,PLD,cm3_g,AV_VF,Has_OMS --epochs 15 \
		--out $(REPORT)/predictor --report $(REPORT)/report.md
	@echo "demo report: $(REPORT)/report.md"

# Two pytest workers, whole files per worker (module fixtures share their compiled functions):
# XLA compiles on one core, so two workers keep both cores of a small machine busy.
TEST_WORKERS ?= 2
test: $(STAMP)
	$(PY) -m pytest -q -n $(TEST_WORKERS) --dist loadfile

test-all: $(STAMP)
	$(PY) -m pytest -q -m '' -n $(TEST_WORKERS) --dist loadfile

bench: $(STAMP)
	$(PY) experiments/bench_io.py
	$(PY) experiments/bench_neighbors.py
	$(PY) experiments/bench_padding.py
	$(PY) experiments/bench_md_compile.py

# The speed tables of BENCHMARKS.md against their peers (torch models, Zeo++): about an hour
# on a quiet 2-core machine; results under experiments/results/. mace-torch is optional
# (bench_potential_speed.py says how to add it).
bench-speed: $(STAMP)
	$(PY) -m pip install --quiet -e '.[dev,torch]'
	$(PY) experiments/bench_physics_speed.py
	$(PY) experiments/bench_geometry.py --timing 60
	$(PY) experiments/bench_predictor_speed.py
	$(PY) experiments/bench_potential_speed.py
	$(PY) experiments/bench_sevennet.py

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache
