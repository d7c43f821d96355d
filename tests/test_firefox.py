"""A smoke test of the tab in a second engine: Debian's firefox-esr, driven by puppeteer-core (npm)
over WebDriver BiDi, against a real `tensorboard` process. The tab must load, draw the loss chart
with the run's points, and log no console error. `make browsers` installs firefox-esr and `make
lint` (or `npm ci`) puppeteer-core; no browser is downloaded."""

import json
import os
import shutil
import subprocess

import numpy as np
import pytest

from tests import helpers

pytestmark = pytest.mark.browser

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIREFOX = "/usr/bin/firefox-esr"
SCRIPT = os.path.join(ROOT, "tests", "firefox_smoke.mjs")
N = 500


def test_the_tab_draws_in_firefox_without_console_errors(tmp_path):
    if not os.path.exists(FIREFOX):
        pytest.fail("Debian's firefox-esr is not installed at %s (`make browsers` installs it)" % FIREFOX)
    if shutil.which("node") is None or not os.path.isdir(os.path.join(ROOT, "node_modules", "puppeteer-core")):
        pytest.fail("node and puppeteer-core are needed (`npm ci` in the checkout installs it)")
    helpers.write_scalars(str(tmp_path / "run_a"), helpers.training_like(N, seed=1))
    with helpers.tensorboard_process(str(tmp_path)) as base:
        done = subprocess.run(
            ["node", SCRIPT, base],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
            env=dict(os.environ, PUPPETEER_SKIP_DOWNLOAD="1"),
        )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["errors"] == []
    assert result["drawn"] == "ready"
    assert result["runs"] == ["run_a"]
    # The run's raw values and its average, every point (fewer than the tab's max_points).
    window = np.array([n for _, n in result["series"]])
    assert sorted(run for run, _ in result["series"]) == ["run_a", "run_a"]
    assert N in window and all(0 < n <= N for n in window)
    assert result["coloured"] > 500
