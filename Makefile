# The README's commands. Both work on a fresh clone: they create .venv themselves.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000

.PHONY: run serve test lint bench send-test-webhook clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.runtime: requirements.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.txt
	touch $@

$(VENV)/.dev: requirements.txt requirements-dev.txt | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements-dev.txt
	touch $@ $(VENV)/.runtime

.env:
	$(BIN)/python deploy/make_dev_env.py .env.example .env

## run: the demo: OrderHub (web, dispatcher, timers) on SQLite with a demo shop, a local SFTP
## server and two demo suppliers, on http://127.0.0.1:$(PORT); Ctrl-C stops all of it
run: $(VENV)/.runtime .env
	exec $(BIN)/python deploy/demo.py --port $(PORT)

## serve: only the web app: migrate the SQLite database and serve on http://$(HOST):$(PORT)
serve: $(VENV)/.runtime .env
	$(BIN)/flask --app wsgi db upgrade
	@$(BIN)/python deploy/make_dev_env.py --banner http://$(HOST):$(PORT)
	exec $(BIN)/gunicorn -c deploy/gunicorn.conf.py --bind $(HOST):$(PORT) wsgi:app

## test: lint, type-check and run the whole suite
test: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/mypy

## bench: the ingest benchmark (figures in bench/README.md)
bench: $(VENV)/.dev
	$(BIN)/python bench/ingest.py

## send-test-webhook: post a signed sample Shopify order to a running `make run`
send-test-webhook: $(VENV)/.runtime .env
	$(BIN)/python deploy/make_dev_env.py --send http://$(HOST):$(PORT) tests/fixtures/shopify/orders_create.json

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
