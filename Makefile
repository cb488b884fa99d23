# Scorestream — `make help` lists the targets.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.DEFAULT_GOAL := help
.PHONY: help install demo test test-unit lint kafka-start kafka-stop clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml scripts/install-system-deps.sh
	bash scripts/install-system-deps.sh
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)  ## install Debian packages if missing, and the Python deps in .venv

demo: $(STAMP)  ## start the broker, a worker, the challengers and the simulator; show live scores (Ctrl-C stops)
	$(BIN)/scorestream demo

test: $(STAMP)  ## lint, then the whole test suite (starts its own Kafka broker)
	$(BIN)/ruff check .
	$(BIN)/pytest

test-unit: $(STAMP)  ## the tests that need no broker
	$(BIN)/pytest -m "not integration"

lint: $(STAMP)  ## ruff
	$(BIN)/ruff check .

kafka-start: $(STAMP)  ## start the local broker (127.0.0.1:9092)
	$(BIN)/scorestream kafka start

kafka-stop: $(STAMP)  ## stop the local broker
	$(BIN)/scorestream kafka stop

clean:  ## remove the venv and local state (broker data, cached jars)
	-$(BIN)/scorestream kafka stop
	rm -rf $(VENV) .scorestream .pytest_cache .ruff_cache
