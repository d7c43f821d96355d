# The two commands of README.md:
#   make demo   sets up .venv, writes the demo logs if missing, starts TensorBoard on them
#   make test   lints, sets up .venv (and Debian's chromium and firefox-esr for the browser tests), runs the whole suite,
#               then the TensorFlow-free tests against the lowest supported versions, then installs a wheel
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PORT ?=

.PHONY: demo test lint test-suite test-min wheel-check bench setup browsers chromium

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# TensorFlow (CPU build) serves the writing side and the demo, PyTorch (the CPU build the machine
# keeps on disk) the PyTorch writer tests; the plugin itself needs neither.
$(VENV)/.installed: $(BIN)/python setup.py pyproject.toml
	$(BIN)/pip install -q tensorflow-cpu torch==2.13.0 -e ".[test]"
	touch $@

setup: $(VENV)/.installed

# Debian's browsers for the browser tests (Playwright drives chromium, puppeteer-core firefox-esr);
# no browser is downloaded.
browsers:
	@command -v chromium >/dev/null && command -v firefox-esr >/dev/null || { apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium firefox-esr; }

chromium: browsers

demo: setup
	$(BIN)/tb-batchavg demo $(if $(PORT),--port $(PORT))

test: lint test-suite test-min wheel-check

# npm's tools (eslint; puppeteer-core for the Firefox smoke test), exactly as package-lock.json
# pins them, with no browser download.
node_modules/.installed: package.json package-lock.json
	PUPPETEER_SKIP_DOWNLOAD=1 npm ci --no-audit --no-fund
	touch $@

# ruff check over tests/, bench/, demo/ (and setup.py); eslint over the frontend and the tests' node scripts.
lint: setup node_modules/.installed
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	node_modules/.bin/eslint frontend tests eslint.config.js

test-suite: setup browsers node_modules/.installed
	$(BIN)/python -m pytest -q

# The plugin's lowest supported versions (pyproject.toml), without TensorFlow: what `pip install .`
# gives a user who only views logs (TensorBoard's own gfile, no TF). TensorBoard 2.12's vendored
# html5lib imports six, which its dependencies no longer bring. Every test runs here but those
# marked (pyproject.toml [tool.pytest.ini_options]) `tf` (logs written with TensorFlow), `browser`
# and `cloud`; those run in the main suite.
MIN_VENV := .venv-min
MIN_VERSIONS := "tensorboard==2.12.*" "numpy==1.26.0" "werkzeug==2.2.*" "orjson==3.9.*" six
$(MIN_VENV)/.installed: setup.py pyproject.toml
	$(PYTHON) -m venv $(MIN_VENV)
	$(MIN_VENV)/bin/pip install -q $(MIN_VERSIONS) pandas scipy pytest hypothesis tensorboardX pillow
	$(MIN_VENV)/bin/pip install -q --no-deps -e .
	touch $@

test-min: $(MIN_VENV)/.installed
	$(MIN_VENV)/bin/python -m pytest -q -p no:cacheprovider -m "not tf and not browser and not cloud and not ray"

# The install a newcomer makes: a wheel built by `python -m build` (from its sdist, so nothing stale
# in build/ gets in) into a temporary directory,
# installed (no -e, no extras) into a clean venv there (with TensorBoard, without TensorFlow; pip's
# cache is reused), then `tensorboard --logdir` from that venv serving the tab (tests/wheel_check.py).
wheel-check: setup
	set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	$(BIN)/python -m build -q --outdir "$$tmp/dist" . >/dev/null; \
	$(PYTHON) -m venv "$$tmp/venv"; \
	"$$tmp/venv/bin/pip" install -q "$$tmp"/dist/tb_batchavg-*.whl; \
	cd "$$tmp" && "$$tmp/venv/bin/python" "$(CURDIR)/tests/wheel_check.py"

bench: setup
	$(BIN)/pip install -q tbparse
	$(BIN)/python -m bench.run
