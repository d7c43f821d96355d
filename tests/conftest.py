import os
import sys

import pytest

from tests import helpers

# Test modules import their shared helpers as a package (`from tests import helpers`): pytest puts
# the checkout's root on sys.path, since tests/ has an __init__.py.
# Quiet TensorFlow's start-up chatter in test output.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


# The reader's kernels (framing, CRCs, template matching, field gathers): in C where setup.py
# built them, else numpy. Tests that take this fixture run with each (the numpy ones are the
# reference: tests/test_records.py).
@pytest.fixture(params=["c", "numpy"])
def kernels(request, monkeypatch):
    from tb_batchavg.ingest import records

    if request.param == "numpy":
        monkeypatch.setattr(records, "_kernels", None)
    elif records._kernels is None:
        pytest.fail("the C kernels are not built (pip install -e . builds them with a C compiler)")
    return request.param


# The browser tests' shared fixtures: a tensorboard process on the requesting module's `logdir`
# fixture, and Debian's Chromium (tests/test_browser.py holds its path and flags).
@pytest.fixture(scope="module")
def server(logdir):
    with helpers.tensorboard_process(str(logdir), "--batchavg_reload_seconds", "0") as base:
        yield base


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # here: collection needs no Playwright

    from tests.test_browser import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, require_chromium

    require_chromium()
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


# TensorFlow, imported by the tests that write logs with it and by TensorBoard's apps, can abort
# the interpreter as it finalizes, after every test has run and the summary is printed: a daemon
# thread that Python stops inside C++ code ("terminate called after throwing an instance of ''",
# exit status 134; seen at the end of a run of tests/test_background.py alone, before and after
# this project's own threads were stopped). The exit status is pytest's own, given without
# finalizing the interpreter.
def pytest_sessionfinish(session, exitstatus):
    session.config._batchavg_exitstatus = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    status = getattr(config, "_batchavg_exitstatus", None)
    if status is not None and "tensorflow" in sys.modules:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
