"""The server's edge (http_api.md, "Errors"): methods, internal errors, diagnostics of degenerate
series, and the streamed export."""

import io
import logging
import os

import numpy as np
import pandas as pd
import pytest
from werkzeug.test import Client

from bench import logs
from tb_batchavg.server import averages as averages_route
from tb_batchavg.server import encoding
from tb_batchavg.server import export as export_route
from tests import helpers

PREFIX = "/data/plugin/batchavg/"
N = 3000
SPIKE = {"zero": 5.0, "constant": 300.0}  # a level of 0, and a level 100 times below the spike


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    logdir = tmp_path_factory.mktemp("edge")
    rng = np.random.default_rng(0)
    loss = 2 + 0.1 * rng.standard_normal(N)
    for name, spiked in (("zero", 0.0), ("constant", 3.0)):
        for role in ("loss", "grad_norm", "learning_rate"):
            columns = {"train/loss": loss, "train/grad_norm": np.full(N, 1.0), "train/learning_rate": np.full(N, 1e-3)}
            values = np.full(N, spiked)
            values[N // 2] = SPIKE[name]
            columns["train/" + role] = values
            helpers.write_scalars(str(logdir / ("%s_%s" % (name, role))), columns)
    noisy = 1e-3 * (1 + 0.2 * rng.standard_normal(N))
    helpers.write_scalars(str(logdir / "noisy_lr"), {"train/loss": loss, "train/learning_rate": noisy})
    decay = 1e-3 * 0.5 ** (np.arange(N) // 200)  # 14 drops, 200 points apart
    helpers.write_scalars(str(logdir / "step_decay"), {"train/loss": loss, "train/learning_rate": decay})
    client = Client(helpers.make_app(str(logdir), "--batchavg_reload_seconds", "0"))
    helpers.wait_loaded(client)
    return client


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
@pytest.mark.parametrize("route", ["runs", "averages?run=zero_loss&tag=train/loss", "export", "index.js"])
def test_other_methods_are_405_with_allow(client, method, route):
    response = client.open(PREFIX + route, method=method)
    assert response.status_code == 405, (route, method, response.data[:200])
    assert response.headers["Allow"] == "GET, HEAD"
    assert helpers.strict_json(response.data)["error"] == "method %s not allowed (allowed: GET, HEAD)" % method


def test_head_is_answered_without_a_body(client):
    for route in ("runs", "averages?run=zero_loss&tag=train/loss", "export?run=zero_loss&tag=train/loss"):
        response = client.head(PREFIX + route)
        assert response.status_code == 200 and response.data == b"", route


def test_an_internal_value_error_is_a_logged_500_without_its_text(client, monkeypatch, caplog):
    """A ValueError of the numeric core (numpy's own, say) is a bug, not a bad request."""

    def broken(*args, **kwargs):
        return np.empty(-1)  # ValueError: negative dimensions are not allowed

    monkeypatch.setattr(averages_route, "shown_average", broken)
    with caplog.at_level(logging.ERROR, logger="tb_batchavg.server.plugin"):
        response = client.get(PREFIX + "averages?run=zero_loss&tag=train/loss&window=7")
    assert response.status_code == 500
    assert helpers.strict_json(response.data) == {"error": "internal error"}
    assert b"negative" not in response.data and b"dimension" not in response.data
    [record] = [r for r in caplog.records if r.name == "tb_batchavg.server.plugin"]
    assert record.exc_info and "negative dimensions" in str(record.exc_info[1])


@pytest.mark.parametrize("name", ["zero", "constant"])
@pytest.mark.parametrize("role", ["loss", "grad_norm", "learning_rate"])
def test_diagnostics_of_a_flat_series_with_one_spike(client, name, role):
    """A series at 0 (or constant) but for one spike: the reference is log(0) (or its spread is
    0), and the spike's ratio to it overflows a float."""
    body = helpers.get_json(client, "diagnostics?run=%s_%s" % (name, role))
    spike_step = N // 2
    if role == "grad_norm":
        [event] = [e for e in body["events"] if e["kind"] == "grad_explosion"]
        assert event["start"] <= spike_step <= event["end"] and event["value"] == pytest.approx(SPIKE[name])
        assert event["severity"] == "critical"
    if role == "loss":  # over a level with no spread the spike is infinitely many SDs: still found
        [event] = [e for e in body["events"] if e["kind"] == "loss_spike"]
        assert event["start"] <= spike_step <= event["end"] and event["value"] == pytest.approx(SPIKE[name])
        assert event["severity"] == "critical" and "inf robust" not in event["detail"]
    if role == "learning_rate":
        assert all(e["kind"] == "lr_change" for e in body["events"])
        assert spike_step in {e["start"] for e in body["events"]}
    assert body["event_count"] == len(body["events"])


def test_a_noisy_learning_rate_gives_few_events_with_counts(client):
    body = helpers.get_json(client, "diagnostics?run=noisy_lr")
    changes = [e for e in body["events"] if e["kind"] == "lr_change"]
    assert 1 <= len(changes) <= 3, len(changes)
    assert sum(e["count"] for e in changes) > N // 10  # each merged change is counted
    assert body["event_count"] == len(body["events"])
    drops = helpers.get_json(client, "diagnostics?run=step_decay")
    assert [(e["start"], e["count"]) for e in drops["events"]] == [(s, 1) for s in range(200, N, 200)]
    bounded = helpers.get_json(client, "diagnostics?run=step_decay&max_points=2")
    assert bounded["events"] == drops["events"][:2] and bounded["event_count"] == 14


@pytest.mark.slow
def test_export_of_a_million_points_streams(tmp_path, monkeypatch):
    """The body is formed a chunk at a time as it is read, and equals pandas' reference."""
    steps = 1_000_000
    os.makedirs(tmp_path / "big")
    logs.write_event_file(str(tmp_path / "big" / "events.out.tfevents.1.big"), steps, "step", 0)
    client = Client(helpers.make_app(str(tmp_path), "--batchavg_reload_seconds", "0"))
    helpers.wait_loaded(client, timeout=300)
    formed = []
    number_texts = encoding.number_texts
    monkeypatch.setattr(encoding, "number_texts", lambda array: formed.append(len(array)) or number_texts(array))
    response = client.get(PREFIX + "export?run=big&tag=train/loss&window=50", buffered=False)
    assert response.status_code == 200 and "Content-Length" not in response.headers
    chunks = response.iter_encoded()
    first = next(chunks) + next(chunks)  # the header row, then the first rows
    assert sum(formed) <= 4 * export_route.CHUNK_ROWS  # one chunk's numbers, of 4 columns
    body = [first]
    for chunk in chunks:
        assert len(chunk) < 2**20
        body.append(chunk)
    assert len(body) >= steps // export_route.CHUNK_ROWS
    assert sum(formed) == 4 * steps
    table = pd.read_csv(io.BytesIO(b"".join(body)), float_precision="round_trip")  # exact at any pandas
    values = logs.series(steps, 0)["train/loss"]
    np.testing.assert_array_equal(table["step"], np.arange(steps))
    np.testing.assert_array_equal(table["value"], np.asarray(values, np.float64))
    reference = pd.Series(np.asarray(values, np.float64)).rolling(50).mean()
    np.testing.assert_allclose(table["average"], reference, rtol=1e-9, atol=1e-12)
    assert table["average"][:49].isna().all()


@pytest.mark.parametrize("args, message", [({}, "is required"), ({"role": "x" * 80}, "must be one of")])
def test_a_choice_without_default_is_a_bad_request_naming_the_choices(args, message):
    from tb_batchavg.server import params

    with pytest.raises(params.BadRequest, match=message) as raised:
        params.choice(args, "role", ("loss", "grad_norm"), None)
    assert "loss, grad_norm" in str(raised.value) and "x" * 51 not in str(raised.value)
