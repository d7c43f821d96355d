"""The load test (bench/load.py) in its short form: a real `tensorboard` process on 127.0.0.1, a
writer appending steps live (its first step a second after the clients start), 32 concurrent
clients issuing mixed requests for 8 seconds.

The long form (60 s, figures in docs/reliability.md) is `python -m bench.load`. Over the real socket
this also checks what the WSGI-level tests cannot: traversal paths sent unnormalised, and a
100 KB query string, which TensorBoard's HTTP server refuses itself (414) before the plugin sees
it, and keeps serving.
"""

import argparse
import gc
import http.client
import os
import tracemalloc
import urllib.parse

import numpy as np
import pytest
from tensorboard.backend import application
from tensorboard.plugins import base_plugin
from werkzeug.test import Client

from bench import load, logs
from tb_batchavg.server.plugin import BatchAvgPlugin

# A real tensorboard process under load for several seconds.
pytestmark = pytest.mark.slow

SHORT_FORM = [
    "--clients",
    "32",
    "--duration",
    "8",
    "--static-runs",
    "1",
    "--static-steps",
    "10000",
    "--cache-mb",
    "16",
    "--writer-delay",
    "1",
]
RAW_TRAVERSALS = [
    "../../../../etc/passwd",
    "../../../setup.py",
    "%2e%2e/%2e%2e/%2e%2e/setup.py",
    "..%2f..%2f..%2fsetup.py",
    "%252e%252e%252f%252e%252e%252fsetup.py",
    "..%5c..%5csetup.py",
    "index.js/../../../../setup.py",
    "%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
]


def raw_get(base, path):
    """A GET of `path` exactly as given (no client-side normalisation or encoding)."""
    host, port = urllib.parse.urlsplit(base).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    try:
        connection.putrequest("GET", path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


def socket_checks(base):
    for path in RAW_TRAVERSALS:
        status, _, body = raw_get(base, load.PREFIX + path)
        assert status == 404, (path, status)
        assert b"root:" not in body and b"setuptools" not in body, path
    status, headers, _ = raw_get(base, load.PREFIX + "index.js")
    assert (status, headers["Content-Type"].split(";")[0], headers["X-Content-Type-Options"]) == (
        200,
        "text/javascript",
        "nosniff",
    )
    status, _, _ = raw_get(base, load.PREFIX + "runs?pad=" + "x" * 100_000)
    assert status == 414  # Request-URI Too Long, from TensorBoard's HTTP server
    status, headers, _ = raw_get(base, load.PREFIX + "runs")
    assert status == 200 and headers["Content-Type"].startswith("application/json")


def test_short_load_against_a_live_tensorboard():
    options = load.parse_args(SHORT_FORM)
    report = load.run(options, after=socket_checks)
    print(load.markdown(report))
    assert report["failures"] == [], report["failures"][:20]
    assert report["server_errors"] == 0
    assert report["before_data"] > 0  # the live run was asked for before its first step
    assert report["writer_steps"] >= 1000 and report["final_checks"] >= 40
    assert set(report["by_kind"]) == set(load.KINDS)  # every kind of request was made
    assert report["requests"] >= options.clients
    # Every answer went through its kind's checks and passed them, and the checks compared values.
    assert report["checked"] == {kind: figures["requests"] for kind, figures in report["by_kind"].items()}
    assert report["values_compared"] >= report["writer_steps"]
    # The only 4xx are the bad requests and the live run asked for before its first step was read
    # (a window longer than a series is answered 200, with a reason).
    assert (
        report["status"].get("400", 0) + report["status"].get("404", 0)
        == report["by_kind"]["bad"]["requests"] + report["before_data"]
    )
    assert report["rss_baseline_mb"] <= report["rss_peak_mb"] <= report["memory_bound_mb"]


def test_memory_held_is_within_the_budget(tmp_path):
    """The load's request mix, in-process: once answered, what the plugin still holds (Python
    allocations traced by tracemalloc, numpy's included) is its raw columns, 24 bytes a point,
    and its cache of results within what the columns leave of --batchavg_cache_mb: no response,
    series copy or parse buffer outlives its request."""
    static_steps, live_steps, budget = 10_000, 5_000, 2**21
    expected = {
        "static_0": {t: v.astype(np.float64) for t, v in logs.series(static_steps, 0).items()},
        load.LIVE: {t: v.astype(np.float64) for t, v in load.live_columns(0, live_steps).items()},
    }
    os.makedirs(tmp_path / "static_0")
    logs.write_event_file(str(tmp_path / "static_0" / "events.out.tfevents.1.s"), static_steps, "step", 0)
    live = load.LiveWriter(str(tmp_path / "events.out.tfevents.1.live"), live_steps, 0, live_steps)
    live.run()  # all steps at once, into the root run "."
    os.makedirs(tmp_path / load.LIVE)
    os.replace(live.path, tmp_path / load.LIVE / os.path.basename(live.path))
    flags = argparse.Namespace(logdir=str(tmp_path), batchavg_cache_mb=budget / 2**20)
    plugin = BatchAvgPlugin(base_plugin.TBContext(flags=flags, data_provider=None, logdir=str(tmp_path)))
    client = Client(application.TensorBoardWSGI([plugin]))
    requests = load.LoadClient(0, "", float("inf"), 0, expected)
    kinds, shares = list(load.KINDS), np.array(list(load.KINDS.values()))
    assert client.get(load.PREFIX + "averages?run=warm-up&tag=none").status_code == 404  # imports TensorFlow
    gc.collect()
    tracemalloc.start()
    try:
        for _ in range(150):
            url, check = requests.request(kinds[int(requests.rng.choice(len(kinds), p=shares / shares.sum()))])
            response = client.get(url)
            check(response.status_code, response.headers, response.data)
        del response
        gc.collect()
        held, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    raw = load.BYTES_PER_POINT * len(load.TAGS) * (static_steps + live_steps)
    assert plugin._store.reader.nbytes() == raw  # 1.08 MB: within the budget, nothing evicted
    assert 0 < plugin._store.results.size <= budget - raw
    assert held <= budget + 2**20, (held, budget, raw)
    assert peak > held + 2 * 2**20  # requests did allocate more while they ran
