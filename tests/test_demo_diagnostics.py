"""The demo's runs through the diagnostics route: the too-high learning rate is flagged, the healthy run is ok."""

import io

import pytest
from werkzeug.test import Client

from tb_batchavg import demo_runs
from tests import helpers

# Writes its logs with TensorFlow.
pytestmark = pytest.mark.tf

STEPS = 1200  # long enough for lr_too_high to blow up (it does from about step 900)


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("demo"))
    demo_runs.write_logs(logdir, steps=STEPS, stream=io.StringIO())
    return Client(helpers.make_app(logdir))


def test_lr_too_high_is_flagged_with_its_explosion(client):
    body = helpers.get_json(client, "diagnostics?run=lr_too_high")
    assert body["status"] == "diverged"
    kinds = {e["kind"] for e in body["events"] if e["severity"] == "critical"}
    assert {"divergence", "grad_explosion"} <= kinds
    first = min(e["start"] for e in body["events"] if e["severity"] == "critical")
    assert STEPS // 2 < first < STEPS  # it goes wrong late, not from the start


def test_healthy_run_is_ok(client):
    body = helpers.get_json(client, "diagnostics?run=healthy")
    assert body["status"] == "ok"
    assert all(e["severity"] == "info" for e in body["events"])


def test_step_decay_drops_are_context_not_alarms(client):
    body = helpers.get_json(client, "diagnostics?run=sgd_step_decay")
    assert body["status"] == "ok"
    drops = [e["start"] for e in body["events"] if e["kind"] == "lr_change"]
    assert len(drops) == 2
