# The two commands of README.md:
#   make demo   sets up .venv, writes the demo logs if missing, starts TensorBoard on them
#   make test   sets up .venv (and Debian's chromium for the browser tests), runs the whole suite
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?=

.PHONY: demo test bench setup chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# TensorFlow (CPU build) serves the writing side and the demo; the plugin itself needs no TensorFlow.
$(VENV)/.installed: $(BIN)/python setup.py pyproject.toml
	$(BIN)/pip install -q tensorflow-cpu -e ".[test]"
	touch $@

setup: $(VENV)/.installed

chromium:
	@command -v chromium >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; }

demo: setup
	$(BIN)/tb-batchavg demo $(if $(PORT),--port $(PORT))

test: setup chromium
	$(BIN)/python -m pytest -q

bench: setup
	$(BIN)/python bench/run.py
