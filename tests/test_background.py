"""Runs load in the background from start-up (issue 13 item 4): `runs` answers while a run loads,
with its progress rising, and a run that is ready is served meanwhile; the flags refuse values
that would stop the plugin from loading (item 5)."""

import subprocess
import sys

import pytest
from werkzeug.test import Client

from tb_batchavg.ingest import reader
from tests import corpus, helpers

# Writes its logs with TensorFlow.
pytestmark = pytest.mark.tf


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("background")
    corpus.write_tf2_function(str(root / "a_small"), 2_000)
    corpus.write_tf2_function(str(root / "b_big"), 200_000, seed=1)
    return root


def test_runs_answers_while_a_run_loads_and_a_ready_run_is_served(logdir, monkeypatch):
    # Small reads make the 45 MB run take long enough to be seen loading (the reading is real).
    monkeypatch.setattr(reader, "_READ_CHUNK", 1 << 15)
    client = Client(helpers.make_app(str(logdir), "--load_fast=false", "--reload_interval=0"))
    small = "averages?run=a_small&tag=while/train/loss&window=50"

    def big():
        return {r["run"]: r for r in helpers.get_json(client, "runs")["runs"]}.get("b_big")

    first = helpers.wait_for(
        lambda: (lambda e: e and e["progress"]["bytes_read"] > 0 and e)(big()), what="b_big to start loading"
    )
    assert first["state"] == "loading" and first["progress"]["bytes_read"] < first["progress"]["bytes_total"]
    body = helpers.get_json(client, small)  # a ready run: answered while the other loads
    assert body["count"] == 2_000 and body["average"] is not None
    listing = helpers.get_json(client, "runs")
    (later,) = [r for r in listing["runs"] if r["run"] == "b_big"]
    assert later["state"] == "loading", "the big run finished before the checks: it proves nothing"
    assert listing["loading"] is True
    # Rising: progress is published per read chunk, so two quick requests may see the same figure.
    helpers.wait_for(lambda: big()["progress"]["bytes_read"] > first["progress"]["bytes_read"], what="progress to rise")
    done = helpers.wait_loaded(client)
    (entry,) = [r for r in done["runs"] if r["run"] == "b_big"]
    assert entry["state"] == "ready" and entry["progress"]["bytes_read"] == entry["progress"]["bytes_total"]
    assert entry["count"] == {"while/" + t: 200_000 for t in corpus.TAGS}


def test_a_data_request_for_a_loading_run_waits_for_it(logdir, monkeypatch):
    monkeypatch.setattr(reader, "_READ_CHUNK", 1 << 15)
    client = Client(helpers.make_app(str(logdir), "--load_fast=false", "--reload_interval=0"))
    body = helpers.get_json(client, "averages?run=b_big&tag=while/train/loss&window=50&max_points=100")
    assert body["count"] == 200_000


@pytest.mark.parametrize(
    "flag, value", [("--batchavg_cache_mb", "nan"), ("--batchavg_cache_mb", "-1"), ("--batchavg_reload_seconds", "inf")]
)
def test_flags_refuse_nan_inf_and_negative_values_at_start_up(tmp_path, flag, value):
    done = subprocess.run(
        [sys.executable, "-m", "tensorboard.main", "--logdir", str(tmp_path), flag + "=" + value],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode != 0
    assert "%s must be a finite number >= 0" % flag in done.stderr
