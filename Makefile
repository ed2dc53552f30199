# The two commands the README opens with: `make demo` and `make test`. Each builds its own .venv.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
DEMO_TRANSACTIONS ?= 200000
DEMO_PORT ?= 5001
DEMO_CONSOLE_PORT ?= 8050

.PHONY: demo test lint typecheck unit install clean contracts-deps breaks mutation deploy-image deploy-up deploy-seed deploy-smoke deploy-down

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit("Python 3.11+ required, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

# Migrate, simulate, train and promote a model, create the console's demo admin (password and TOTP secret
# printed once), then serve the operator console on DEMO_CONSOLE_PORT in the background and the scoring API
# in the foreground (Ctrl-C stops both).
demo: $(STAMP)
	$(BIN)/ticketguard db upgrade
	$(BIN)/ticketguard simulate --transactions $(DEMO_TRANSACTIONS) --seed 7 --replace
	$(BIN)/ticketguard train --promote
	$(BIN)/ticketguard admin create demo --role admin --generate-password --reset --actor make-demo
	$(BIN)/ticketguard serve dashboard --port $(DEMO_CONSOLE_PORT) & console=$$!; \
	  trap 'kill $$console 2>/dev/null' EXIT INT TERM; \
	  $(BIN)/ticketguard serve api --host 127.0.0.1 --port $(DEMO_PORT) --example

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks examples deploy
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/bandit -q -c pyproject.toml -r src --confidence-level medium

test: lint
	$(BIN)/python -m pytest -n 2 --dist loadgroup -q

# The JSON-RPC test's node (anvil) and the contract build's compiler, exactly as contracts/package-lock.json
# pins them. A setup step of its own (.ci/run runs it before `make test`); without it that test is skipped
# (outside CI) with this command in its reason.
ANVIL := contracts/node_modules/.bin/anvil
$(ANVIL): contracts/package-lock.json
	cd contracts && npm ci --no-audit --no-fund --loglevel=error
	touch $(ANVIL)

contracts-deps: $(ANVIL)

# On demand, not in CI: apply each deliberate break of tests/breaks/apply_breaks.py and run its tests
# (docs/testing.md), and mutation-test the durability modules (benchmarks/mutation.py).
breaks: $(STAMP)
	$(BIN)/python tests/breaks/apply_breaks.py

mutation: $(STAMP)
	$(BIN)/python benchmarks/mutation.py

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache

# --- deployment (docs/deploy.md); not part of `make test` ---------------------------------------------------
COMPOSE ?= docker-compose
STACK   := $(COMPOSE) -p ticketguard -f deploy/compose.yaml
BASE_IMAGE ?= python:3.11-slim

deploy-image:
	docker build --build-arg BASE_IMAGE=$(BASE_IMAGE) -t ticketguard:local .

# Needs deploy/.env (copy deploy/.env.example and set the secrets).
deploy-up:
	$(STACK) up -d --build

# Simulated history and a trained, promoted model in the running stack (demo data: never in production).
deploy-seed:
	$(STACK) run --rm migrate seed

deploy-down:
	$(STACK) down

# Build, bring up, smoke-test (health, predict through nginx, dashboard, SIGTERM under load), tear down.
# LOCAL_IMAGES=1 builds every image from Debian packages (no Docker Hub). Output: deploy/out/smoke.log.
deploy-smoke: $(STAMP)
	deploy/smoke.sh
