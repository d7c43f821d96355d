"""The diagnostics route over a real TensorBoard app, on logs with planted anomalies."""

import numpy as np
import pytest
from werkzeug.test import Client

from tests import helpers

N = 6000
SPIKE_STEP = 2500
NAN_STEP = 4000


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("diag")
    columns = helpers.training_like(N, seed=3)
    loss = columns["train/loss"].astype(np.float64)
    loss[SPIKE_STEP] = loss[SPIKE_STEP] * 25
    loss[NAN_STEP] = np.nan
    columns["train/loss"] = loss
    helpers.write_scalars(str(logdir / "planted"), columns)
    helpers.write_scalars(str(logdir / "loss_only"), {"my_objective": columns["train/loss"]})
    return Client(helpers.make_app(str(logdir)))


def test_planted_spike_and_nan_are_reported(client):
    body = helpers.get_json(client, "diagnostics?run=planted")
    assert body["tags"] == {
        "loss": "train/loss",
        "grad_norm": "train/grad_norm",
        "learning_rate": "train/learning_rate",
    }
    spikes = [e for e in body["events"] if e["kind"] == "loss_spike"]
    assert [e["peak_step"] for e in spikes] == [SPIKE_STEP]
    nonfinite = [e for e in body["events"] if e["kind"] == "nonfinite"]
    assert [(e["start"], e["end"]) for e in nonfinite] == [(NAN_STEP, NAN_STEP)]
    assert body["nonfinite"]["loss"] == {"count": 1, "first_step": NAN_STEP, "steps": [NAN_STEP]}
    assert body["status"] == "diverged"  # a non-finite loss
    assert body["params"]["spike_k"] == 6.0


def test_settings_change_the_answer_and_are_echoed(client):
    strict = helpers.get_json(client, "diagnostics?run=planted&spike_k=2.5&window=30")
    assert strict["params"]["spike_k"] == 2.5 and strict["params"]["window"] == 30


def test_explicit_tags_and_missing_roles(client):
    body = helpers.get_json(client, "diagnostics?run=loss_only&loss=my_objective")
    assert body["tags"] == {"loss": "my_objective", "grad_norm": None, "learning_rate": None}
    assert body["nonfinite"]["grad_norm"] is None
    assert body["precedence"]["lag"] is None


@pytest.mark.parametrize(
    "query, status, word",
    [
        ("diagnostics", 400, "run"),
        ("diagnostics?run=nope", 404, "nope"),
        ("diagnostics?run=planted&loss=absent", 404, "absent"),
        ("diagnostics?run=planted&spike_k=0", 400, "spike_k"),
        ("diagnostics?run=planted&spike_k=nan", 400, "spike_k"),
        ("diagnostics?run=planted&window=abc", 400, "window"),
        ("diagnostics?run=planted&window=2", 400, "window"),
        ("diagnostics?run=planted&vanish_fraction=1.5", 400, "vanish_fraction"),
    ],
)
def test_errors_name_the_problem(client, query, status, word):
    body = helpers.get_json(client, query, expect=status)
    assert word in body["error"]
