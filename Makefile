# The commands of this project; CI calls the same ones (.ci/run).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
LOCKS := requirements.uv.lock requirements.lock
STAMP := $(VENV)/.installed-$(shell cat $(LOCKS) pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: install run test test-postgres test-sqlite soak lint typecheck schema bench bench-ten-million profile screenshots graphiql-assets lock migration services clean

install: $(STAMP)

# Every download is checked against the locks' hashes, uv's own included.
$(STAMP): $(LOCKS) pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.uv.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --require-hashes -r requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	rm -f $(VENV)/.installed-* && touch $(STAMP)

## Serve the API, the worker and the send-API simulator on the embedded defaults;
## the console shows each mailing's progress, every process's full log goes to $(LOG_DIR).
## Ports move: make run API_PORT=9000 PROVIDER_PORT=9001 WORKER_METRICS_PORT=9002
API_PORT ?= 8000
PROVIDER_PORT ?= 8001
WORKER_METRICS_PORT ?= 8002
LOG_DIR ?= data/logs
run: install
	$(BIN)/mailings migrate
	API_PORT=$(API_PORT) PROVIDER_PORT=$(PROVIDER_PORT) WORKER_METRICS_PORT=$(WORKER_METRICS_PORT) \
	  LOG_DIR=$(LOG_DIR) $(BIN)/honcho start --no-prefix -f Procfile

## The whole suite on PostgreSQL + Redis and on SQLite + SQLite Huey, side by side
## (scripts/test_both.sh); one backend alone: make test-postgres, make test-sqlite.
test: install services
	$(BIN)/python scripts/check_schema.py
	scripts/test_both.sh $(BIN)/pytest $(PYTEST_ARGS)

test-postgres: install
	MAILINGS_TEST_BACKEND=postgres $(BIN)/pytest $(PYTEST_ARGS)

test-sqlite: install
	MAILINGS_TEST_BACKEND=sqlite $(BIN)/pytest $(PYTEST_ARGS)

## The stateful property test of the sending path, nightly-sized, new sequences, both backends.
soak: install services
	for backend in postgres sqlite; do \
	  MAILINGS_TEST_BACKEND=$$backend PROPERTY_RANDOM=1 \
	  PROPERTY_EXAMPLES=$${PROPERTY_EXAMPLES:-500} PROPERTY_STEPS=$${PROPERTY_STEPS:-50} \
	  $(BIN)/pytest -p no:cacheprovider -s tests/test_engine_properties.py || exit 1; \
	done

services:
	scripts/services.sh

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## Regenerate schema.graphql and the reference generated from it, docs/api.md.
schema: install
	$(BIN)/mailings export-schema > schema.graphql
	$(BIN)/mailings export-docs > docs/api.md

bench: install services
	$(BIN)/python -m bench

## Where a worker's CPU goes: py-spy on a worker sending 50,000 messages, PostgreSQL's statements
## (a throwaway cluster with pg_stat_statements); PROFILE_ARGS="--native" etc., see bench/README.md.
profile: install services
	$(BIN)/python -m bench.profile_engine $(PROFILE_ARGS)

## The 10-million-client figures (tens of minutes; a bench database of its own, dropped after).
bench-ten-million: install services
	$(BIN)/python -m bench.ten_million

## Refresh docs/screenshots/ from the browser tests (admin page, GraphiQL, the report email).
screenshots: install services
	ADMIN_SCREENSHOTS=docs/screenshots $(BIN)/pytest tests/test_admin_browser.py tests/test_admin_timeline.py \
	  tests/test_admin_sign_in.py tests/test_graphiql_browser.py tests/test_report_render.py

## Refresh GraphiQL's vendored browser files with npm, at the versions pinned in scripts/graphiql/.
graphiql-assets: install
	$(BIN)/python scripts/graphiql_assets.py

## Re-pin the dependencies after editing pyproject.toml or UV_VERSION, with hashes, for every
## Python that requires-python allows (the image installs the .prod subset).
lock: install
	echo "uv==$(UV_VERSION)" | $(BIN)/uv pip compile --quiet --generate-hashes --universal - -o requirements.uv.lock
	$(BIN)/uv pip compile --quiet --generate-hashes --universal --extra dev pyproject.toml -o requirements.lock
	$(BIN)/uv pip compile --quiet --generate-hashes --universal -c requirements.lock pyproject.toml -o requirements.prod.lock

## A new migration for what changed in the models, both dialects: make migration NAME=add_message_note
migration: install
	@test -n "$(NAME)" || { echo "usage: make migration NAME=what_it_does" >&2; exit 2; }
	$(BIN)/python scripts/new_migration.py "$(NAME)"

clean:
	rm -rf $(VENV) data .pytest_cache .mypy_cache .ruff_cache
