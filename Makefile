# The two set-up commands are `make demo` and `make test`; both build the environment first
# (scripts/ensure-env.sh: cached per machine, keyed by pyproject.toml).

PY       := .venv/bin/python
DEMO_OUT ?= demo-out

# Offline and telemetry off for everything make runs (see DEVELOPERS.md).
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export PREFECT_SERVER_ANALYTICS_ENABLED := false
export DO_NOT_TRACK := true
export MLFLOW_DISABLE_TELEMETRY := true

.PHONY: env test test-slow demo serve lint clean

env:
	@bash scripts/ensure-env.sh

# The suite: two workers, whole files per worker (the shared demo fixture runs once) in the order of
# tests/conftest.py LONGEST_FIRST (not xdist's by-test-count order), the slow tier left out.
test: env
	$(PY) -m pytest -q -n 2 --dist loadfile --no-loadscope-reorder -m "not slow"

# The slow tier (CI runs it after `make test`): the whole 600-step demo and what it learned, the long
# learning tests.
test-slow: env
	$(PY) -m pytest -q -m slow

demo: env
	$(PY) -m flows.cli demo --out $(DEMO_OUT)

serve: env
	$(PY) -m flows.cli serve --home serve-home

lint: env
	$(PY) -m ruff check xvlm flows tests bench

clean:
	rm -rf $(DEMO_OUT) serve-home .pytest_cache .ruff_cache
