# make run: one job on the defaults (the paper's Figure 3 setup). make test: lint and the tests, but the
# slow end-to-end ones; make test-slow: those (CI runs both, docs/tests.md).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SWEEP ?=
ARGS ?=

.PHONY: run test test-slow lint analysis reprobe leet sync bench clean

$(BIN)/nesterov-landscape-installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@

run: $(BIN)/nesterov-landscape-installed
	$(BIN)/python -m nesterov_landscape

test: lint
	$(BIN)/python -m pytest -m "not slow"

lint: $(BIN)/nesterov-landscape-installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-slow: $(BIN)/nesterov-landscape-installed
	$(BIN)/python -m pytest -m slow

# the newest sweep under multirun/, or SWEEP=multirun/<date>/<time>; ARGS="--by model.width --out DIR"
analysis: $(BIN)/nesterov-landscape-installed
	$(BIN)/python -m multirun_analysis $(SWEEP) $(ARGS)

# probe a finished sweep (or job) again at its kept weights: SWEEP=multirun/<date>/<time> ARGS="probe=[hessian]"
reprobe: $(BIN)/nesterov-landscape-installed
	$(BIN)/python -m nesterov_landscape.reprobe $(SWEEP) $(ARGS)

# every job's W&B run of the newest sweep (or SWEEP=...) in one `wandb leet`, all selected (docs/wandb.md)
leet: $(BIN)/nesterov-landscape-installed
	$(BIN)/python -m multirun_analysis.wandb_sweep leet $(SWEEP)

# upload the newest sweep's (or SWEEP=...) offline W&B runs, the jobs' and the analysis's, with
# `wandb sync -n 8`, skipping runs synced before; ARGS="-n 16" or ARGS=--dry-run
sync: $(BIN)/nesterov-landscape-installed
	$(BIN)/python -m multirun_analysis.wandb_sweep sync $(SWEEP) $(ARGS)

# side-by-side timings of every way to run the paper preset; the report is saved under benchmarks/
bench: $(BIN)/nesterov-landscape-installed
	$(BIN)/python benchmarks/bench.py --out benchmarks/bench-$$(date +%Y-%m-%d).md

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache
