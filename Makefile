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

.PHONY: env test demo serve lint clean

env:
	@bash scripts/ensure-env.sh

test: env
	$(PY) -m pytest -q

demo: env
	$(PY) -m flows.cli demo --out $(DEMO_OUT)

serve: env
	$(PY) -m flows.cli serve --home serve-home

lint: env
	$(PY) -m ruff check xvlm flows tests bench

clean:
	rm -rf $(DEMO_OUT) serve-home .pytest_cache .ruff_cache
