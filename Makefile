# Every target (re)creates .venv from constraints.txt first, so a fresh machine needs only python3.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup demo test test-fast lint bench mutation clean

$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[dev,distributed]"
	touch $(STAMP)

setup: $(STAMP)
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=""; [ "$$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"; \
	  $$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium \
	  || echo "chromium could not be installed: the report's browser test will skip"; }

demo: $(STAMP)
	$(BIN)/allocgym quickstart

test: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider

test-fast: setup
	$(BIN)/python -m pytest -q -p no:cacheprovider -m "not slow"

# Mutation score per module (one mutmut worker; MODULES="costs measures" picks some,
# SAMPLE=20 judges a systematic 20% sample, MUTATION_ARGS=--rejudge rejudges the survivors).
mutation: $(STAMP)
	$(BIN)/python tools/mutation.py --max-children 1 --sample $(or $(SAMPLE),100) $(MUTATION_ARGS) $(MODULES)

lint: $(STAMP)
	$(BIN)/ruff check src envs agents baselines tests tools
	$(BIN)/ruff format --check src envs agents baselines tests tools

clean:
	rm -rf $(VENV) build dist *.egg-info src/*.egg-info runs
