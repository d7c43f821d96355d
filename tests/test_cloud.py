"""Cloud logdirs against real local servers (issue 13, items 6 and 7): moto's S3 server and
gcp-storage-emulator (GCS), both from the package index, run as subprocesses on free ports. The
reader goes through TensorBoard's own gfile, as for a user without TensorFlow: s3:// by boto3,
gs:// by fsspec/gcsfs. Objects are uploaded by a separate client (boto3, or plain HTTP to the
emulator), as another process would write them. The expectation throughout: the columns a
fresh reader gives on the same bytes (read here from a local copy)."""

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from tensorboard.backend.event_processing import (
    data_ingester,
    directory_loader,
    directory_watcher,
    event_file_loader,
    io_wrapper,
    plugin_asset_util,
)
from tensorboard.compat import tensorflow_stub
from werkzeug.test import Client

from tb_batchavg.ingest import reader
from tests import helpers

# Local S3 and GCS servers (moto, gcp-storage-emulator).
pytestmark = pytest.mark.cloud

# gcsfs's default (its "experimental" zonal-bucket support) asks a gRPC control API for each
# bucket's layout and waits 60 s for it on an emulator: use the plain GCS filesystem.
os.environ["GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT"] = "false"

FILE = "events.out.tfevents.1700000000.host"
FAST = 5.0  # seconds a request may take once the store is down; one request to it takes 30 s (gcsfs retries)


@contextlib.contextmanager
def server(kind):
    """A real local S3 (moto) or GCS (gcp-storage-emulator) server; yields (endpoint, process)."""
    port = helpers.free_port()
    if kind == "s3":
        cmd = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        probe = "/"
    else:
        cmd = [
            sys.executable,
            "-m",
            "gcp_storage_emulator",
            "start",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--in-memory",
            "-q",
        ]
        probe = "/storage/v1/b"
    endpoint = "http://127.0.0.1:%d" % port
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:

        def up():
            try:
                return urllib.request.urlopen(endpoint + probe, timeout=2).status == 200
            except OSError:
                assert proc.poll() is None, "%s server exited" % kind

        helpers.wait_for(up, timeout=60, what="%s server" % kind)
        yield endpoint, proc
    finally:
        proc.kill()
        proc.wait()


class Store:
    """Buckets and objects on one server, written by a client of its own."""

    def __init__(self, kind, endpoint, monkeypatch):
        self.kind, self.endpoint = kind, endpoint
        # TensorBoard's own gfile for the reader and TensorBoard's own loading, as without TensorFlow.
        for module in (
            reader,
            data_ingester,
            directory_loader,
            directory_watcher,
            event_file_loader,
            io_wrapper,
            plugin_asset_util,
        ):
            monkeypatch.setattr(module, "tf", tensorflow_stub)
        if kind == "s3":
            import boto3

            for name, value in [
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
                ("AWS_DEFAULT_REGION", "us-east-1"),
                ("S3_ENDPOINT", endpoint),
            ]:
                monkeypatch.setenv(name, value)
            # TensorBoard's S3 filesystem read S3_ENDPOINT when it was imported.
            monkeypatch.setattr(tensorflow_stub.io.gfile.get_filesystem("s3://b/k"), "_s3_endpoint", endpoint)
            self.client = boto3.client("s3", endpoint_url=endpoint)
        else:
            monkeypatch.setenv("STORAGE_EMULATOR_HOST", endpoint)

    def _gcs(self, method, url, body, content_type):
        request = urllib.request.Request(
            self.endpoint + url, data=body, method=method, headers={"Content-Type": content_type}
        )
        urllib.request.urlopen(request, timeout=10).read()

    def bucket(self):
        name = "bucket-%d" % helpers.free_port()  # a new bucket (and no listing cached for it)
        if self.kind == "s3":
            self.client.create_bucket(Bucket=name)
        else:
            self._gcs("POST", "/storage/v1/b?project=test", json.dumps({"name": name}).encode(), "application/json")
        return name

    def put(self, bucket, key, data):
        if self.kind == "s3":
            self.client.put_object(Bucket=bucket, Key=key, Body=data)
        else:
            self._gcs(
                "POST",
                "/upload/storage/v1/b/%s/o?uploadType=media&name=%s" % (bucket, urllib.parse.quote(key, safe="")),
                data,
                "application/octet-stream",
            )

    def root(self, bucket):
        return "%s://%s/logs" % ("s3" if self.kind == "s3" else "gs", bucket)


@pytest.fixture(scope="module")
def servers():
    with server("s3") as s3, server("gs") as gs:
        yield {"s3": s3[0], "gs": gs[0]}


@pytest.fixture(params=["s3", "gs"])
def store(request, servers, monkeypatch):
    return Store(request.param, servers[request.param], monkeypatch)


def event_bytes(n, seed, steps=None):
    with tempfile.TemporaryDirectory() as d:
        path = helpers.write_scalars(d, helpers.training_like(n, seed=seed), steps=steps)
        return open(path, "rb").read()


def fresh_columns(data):
    """What a fresh reader gives on these bytes: {tag: Series}, read from a local copy."""
    with tempfile.TemporaryDirectory() as d:
        os.mkdir(os.path.join(d, "run"))
        with open(os.path.join(d, "run", FILE), "wb") as f:
            f.write(data)
        logs = reader.LogdirReader(d)
        logs.reload()
        return {t: logs.series("run", t) for t in logs.tags("run")}


def assert_columns(logs, data):
    expected = fresh_columns(data)
    assert logs.tags("run") == sorted(expected)
    for tag, want in expected.items():
        got = logs.series("run", tag)
        for field in reader.Series._fields:
            np.testing.assert_array_equal(getattr(got, field), getattr(want, field), err_msg=(tag, field))


def app_client(root, reload_seconds="0.5"):
    return Client(
        helpers.make_app(
            root, "--load_fast=false", "--reload_interval=0", "--batchavg_reload_seconds=" + reload_seconds
        )
    )


def test_full_resolution_through_reader_and_app(store):
    bucket = store.bucket()
    columns = helpers.training_like(3000, seed=1)
    data = event_bytes(3000, seed=1)
    store.put(bucket, "logs/run/" + FILE, data)
    logs = reader.LogdirReader(store.root(bucket))
    logs.reload()
    assert logs.get("run").health()["errors"] == []
    assert_columns(logs, data)
    series = logs.series("run", "train/loss")
    assert series.step.tolist() == list(range(3000))
    np.testing.assert_array_equal(series.value, columns["train/loss"].astype(np.float64))

    client = app_client(store.root(bucket))
    listing = helpers.wait_loaded(client)
    assert listing["sampled"] is False and listing["errors"] == []
    [entry] = listing["runs"]
    assert entry["run"] == "run" and entry["count"]["train/loss"] == 3000 and entry["health"]["errors"] == []
    answer = helpers.get_json(client, "averages?run=run&tag=train/loss&window=10&max_points=5000")
    assert answer["sampled"] is False and answer["count"] == 3000
    np.testing.assert_allclose(answer["raw"]["value"], columns["train/loss"], rtol=1e-6)


def test_missing_bucket_is_an_error_in_runs_never_a_500(store):
    root = store.root("no-such-bucket-%d" % helpers.free_port())
    client = app_client(root)
    routes = [
        "runs",
        "run_order",
        "averages?run=run&tag=train/loss",
        "correlation?run=run",
        "diagnostics?run=run",
        "export?run=run&tag=train/loss&format=csv",
        "index.js",
    ]
    for route in routes:
        status = client.get("/data/plugin/batchavg/" + route).status_code
        assert status < 500, (route, status)
    for route in ["/data/plugins_listing", "/data/runs", "/data/environment"]:
        assert client.get(route).status_code < 500, route

    logs = reader.LogdirReader(root)
    logs.reload()
    assert logs.runs() == [] and len(logs.errors) == 1 and root in logs.errors[0], logs.errors
    errors = helpers.wait_for(
        lambda: helpers.get_json(client, "runs").get("errors"),
        timeout=30,
        what="the missing bucket named in runs' errors",
    )
    assert root in errors[0]


@pytest.mark.parametrize("kind", ["s3", "gs"])
def test_endpoint_down_keeps_serving_what_was_read(kind, monkeypatch):
    with server(kind) as (endpoint, proc):
        store = Store(kind, endpoint, monkeypatch)
        bucket = store.bucket()
        store.put(bucket, "logs/run/" + FILE, event_bytes(2000, seed=3))
        client = app_client(store.root(bucket))
        listing = helpers.wait_loaded(client)
        assert listing["runs"][0]["count"]["train/loss"] == 2000
        helpers.get_json(client, "averages?run=run&tag=train/loss&window=10")
        proc.kill()
        proc.wait()

    def quick(route, expect=200):
        start = time.monotonic()
        answer = helpers.get_json(client, route, expect=expect)
        assert time.monotonic() - start < FAST, (route, time.monotonic() - start)
        return answer

    windows = iter(range(11, 10_000))

    def health_errors():
        listing = quick("runs")
        [entry] = listing["runs"]
        assert entry["count"]["train/loss"] == 2000 and entry["state"] == "ready"
        answer = quick("averages?run=run&tag=train/loss&window=%d" % next(windows))  # not cached
        assert answer["count"] == 2000
        return entry["health"]["errors"]

    errors = helpers.wait_for(health_errors, timeout=150, what="the run's health naming the store error")
    assert "cannot" in errors[0]
    for route in [
        "correlation?run=run&x=train/loss&y=train/grad_norm",
        "diagnostics?run=run",
        "export?run=run&tag=train/loss&format=csv",
    ]:
        assert client.get("/data/plugin/batchavg/" + route).status_code == 200, route
    quick("averages?run=no-such-run&tag=train/loss", expect=404)


def reads(monkeypatch, target):
    """Records the offset of every read of `target` (readers of earlier tests' apps may still be
    reading their own logdirs in the background)."""
    offsets, read_at = [], reader._read_at

    def recording(path, offset, into):
        if path == target:
            offsets.append(offset)
        return read_at(path, offset, into)

    monkeypatch.setattr(reader, "_read_at", recording)
    return offsets


def test_object_replaced_by_one_of_the_same_size_is_noticed(store):
    bucket = store.bucket()
    old, new = event_bytes(3000, seed=1), event_bytes(3000, seed=2)
    assert len(old) == len(new) and old != new
    store.put(bucket, "logs/run/" + FILE, old)
    logs = reader.LogdirReader(store.root(bucket))
    logs.reload()
    assert_columns(logs, old)
    # at once: S3's LastModified has whole seconds, so the ETag must tell
    store.put(bucket, "logs/run/" + FILE, new)
    logs.reload()
    assert_columns(logs, new)


def test_object_replaced_by_a_longer_one_is_read_from_the_start(store):
    bucket = store.bucket()
    old, new = event_bytes(3000, seed=1), event_bytes(4000, seed=2)
    store.put(bucket, "logs/run/" + FILE, old)
    logs = reader.LogdirReader(store.root(bucket))
    logs.reload()
    store.put(bucket, "logs/run/" + FILE, new)
    logs.reload()
    assert_columns(logs, new)  # not old steps 0..2999 then new 3000..3999


def test_appended_object_reads_the_new_part(store, monkeypatch):
    bucket = store.bucket()
    data = event_bytes(3000, seed=4)
    cut = len(data) // 3 + 7  # mid-record
    store.put(bucket, "logs/run/" + FILE, data[:cut])
    logs = reader.LogdirReader(store.root(bucket))
    logs.reload()
    assert_columns(logs, data[:cut])
    target = store.root(bucket) + "/run/" + FILE
    held = logs.get("run").files[target].offset
    offsets = reads(monkeypatch, target)
    store.put(bucket, "logs/run/" + FILE, data)
    logs.reload()
    assert offsets and min(offsets) >= held - reader._FINGERPRINT, (held, offsets)
    assert_columns(logs, data)
