# Two commands matter: `make test` and `make demo`. Both create or refresh .venv themselves.
# The venv is rebuilt only when pyproject.toml changes (stamp file), so a second run installs nothing.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
EXTRAS := edge,cloud,train,load,dev
STAMP  := $(VENV)/.eibert-installed

.PHONY: venv test lint demo bench bench-fleet load clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# torch first, by exact version: pip then takes the local CPU wheel instead of a CUDA build.
	$(BIN)/python -m pip install --quiet "torch==2.13.0"
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# Two pytest-xdist workers, a file at a time each (`--dist loadfile`: a file's tests share one worker and its fixtures);
# tests/conftest.py sends the files with slow tests first. TEST_WORKERS=0 runs everything in one process.
TEST_WORKERS ?= 2

test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile

demo: $(STAMP)
	$(BIN)/eibert demo

bench: $(STAMP)
	$(BIN)/eibert bench --out BENCHMARKS.md

# 10,000 simulated devices over 2 days against a local cloud (about 6 minutes on 2 cores); the fleet section.
bench-fleet: $(STAMP)
	$(BIN)/eibert bench-fleet --devices 10000 --days 2 --out BENCHMARKS.md

# locust against a real cloud + edge node (LOAD_SECONDS per target, default 30); writes the load section.
load: $(STAMP)
	$(BIN)/python -m loadtests.run --out BENCHMARKS.md

clean:
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
