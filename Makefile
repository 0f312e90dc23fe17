# The front door. Every target runs a `python -m` CLI inside .venv, which the first target
# that needs it creates from nothing (Python >= 3.11 is all a fresh machine needs).
# Two stamps: `make run`/`serve`/`train` need the runtime dependencies only ([project]
# dependencies, pinned by constraints.txt); `make test`/`lint`/`bench`/`docs` add the dev extras.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME_STAMP := $(VENV)/.runtime-stamp
STAMP := $(VENV)/.installed-stamp

.PHONY: run test train serve notebook lint docs bench compose-test kube-test lock clean

$(RUNTIME_STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python >= 3.11 is needed")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip==25.3
	$(BIN)/python -m pip install --quiet -c constraints.txt -e .
	touch $(RUNTIME_STAMP)

# Runtime + dev extras (pytest, ruff, mypy, mkdocs, ...): what the development targets need.
$(STAMP): $(RUNTIME_STAMP)
	$(BIN)/python -m pip install --quiet -c constraints.txt -e '.[dev]'
	touch $(STAMP)

## run: install, train a model if there is no current one, serve on :8000 (SQLite log)
run: $(RUNTIME_STAMP)
	$(BIN)/python -m training train --if-missing
	$(BIN)/python -m serving serve

## test: the whole suite (Postgres from DATABASE_URL, else a throwaway cluster)
test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

## train: train, evaluate, register, promote if it passes the quality gate
train: $(RUNTIME_STAMP)
	$(BIN)/python -m training train $(TRAIN_ARGS)

## serve: serve the current model (DATABASE_URL picks the prediction log)
serve: $(RUNTIME_STAMP)
	$(BIN)/python -m serving serve

## notebook: run notebooks/exploration.ipynb headless; prints each cell and where the executed copy went
notebook: $(STAMP)
	$(BIN)/python notebooks/execute.py notebooks/exploration.ipynb

## lint: ruff and mypy --strict
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## docs: build the documentation site into site/ (mkdocs, --strict: a broken link fails)
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

## bench: the benchmark table (needs wrk: apt-get install -y wrk)
bench: $(STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

## compose-test: build the images and run the compose stack end to end
compose-test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/compose -m compose -v

## kube-test: build the images and play the Kubernetes manifests with podman (kube play)
kube-test: $(STAMP)
	$(BIN)/python -m pytest -p no:cacheprovider tests/kube -m kube -v

## lock: refreeze constraints.txt after changing pyproject.toml
lock:
	rm -rf .lock-venv && $(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade pip==25.3
	.lock-venv/bin/python -m pip install --quiet '.[dev]'
	.lock-venv/bin/python -m pip freeze --exclude skship > constraints.txt
	rm -rf .lock-venv

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache site
