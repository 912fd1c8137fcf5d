# Two commands on a fresh clone: `make demo` runs the portal, `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed

.PHONY: demo test lint lock bench clean

# A changed lock file gets a fresh environment, so packages it dropped are gone too.
$(INSTALLED): requirements.lock
	@$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ is required" if sys.version_info < (3, 11) else 0)'
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --require-hashes --no-deps -r requirements.lock
	@touch $@

demo: $(INSTALLED)
	$(BIN)/python -m portal.devstack demo

test: $(INSTALLED)
	$(BIN)/python -m portal.devstack test $(PYTEST_ARGS)

# Style, then the one-way dependencies between the apps (contracts in pyproject.toml).
lint: $(INSTALLED)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(INSTALLED)
	$(BIN)/python -m portal.devstack run bench/provision.py

# Re-pin requirements.lock from pyproject.toml (needs the registry).
lock: $(INSTALLED)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra dev --universal --python-version 3.11 \
		--generate-hashes -o requirements.lock

clean:
	rm -rf .run $(VENV)
