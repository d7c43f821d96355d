"""Shared test utilities: real event files, a real TensorBoard WSGI app, a real tensorboard process."""

import contextlib
import json
import math
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter


def write_scalars(directory, columns, steps=None, wall_start=1_700_000_000.0, filename_suffix=""):
    """Writes {tag: values} as simple_value scalars with tensorboard's own writer, one event per step.

    Returns the path of the event file.
    """
    n = len(next(iter(columns.values())))
    steps = np.arange(n) if steps is None else np.asarray(steps)
    writer = EventFileWriter(directory, filename_suffix=filename_suffix)
    for i in range(n):
        values = [summary_pb2.Summary.Value(tag=tag, simple_value=float(v[i])) for tag, v in columns.items()]
        writer.add_event(
            event_pb2.Event(step=int(steps[i]), wall_time=wall_start + i, summary=summary_pb2.Summary(value=values))
        )
    writer.close()
    return event_file(directory)


def event_file(directory):
    names = sorted(n for n in os.listdir(directory) if "tfevents" in n)
    return os.path.join(directory, names[-1])


def training_like(n, seed=0):
    """Loss, gradient norm and learning rate that look like a training run's, as float32 values."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    trend = 2.0 * np.exp(-3.0 * t / n) + 0.2
    loss = trend * np.exp(0.15 * rng.standard_normal(n))
    grad_norm = 0.5 * trend + 0.3 * (loss - trend) + 0.05 * np.abs(rng.standard_normal(n))
    lr = 1e-3 * np.minimum(1.0, (t + 1) / max(1, n // 20))
    return {
        "train/loss": loss.astype(np.float32),
        "train/grad_norm": grad_norm.astype(np.float32),
        "train/learning_rate": lr.astype(np.float32),
    }


def make_app(logdir=None, *flags):
    """A TensorBoard WSGI app built the way `tensorboard --logdir` builds it (plugins from entry points)."""
    from tensorboard import program
    from tensorboard.backend import application

    tb = program.TensorBoard()
    argv = [None] + (["--logdir", logdir] if logdir is not None else []) + list(flags)
    tb.configure(argv=argv)
    provider, multiplexer = tb._make_data_provider()
    return application.TensorBoardWSGIApp(tb.flags, tb.plugin_loaders, provider, tb.assets_zip_provider, multiplexer)


def strict_json(data):
    """json.loads refusing NaN and Infinity, which are not JSON (browsers' JSON.parse fails)."""

    def refuse(token):
        raise ValueError("%s in a JSON answer" % token)

    return json.loads(data, parse_constant=refuse)


def get_json(client, route, expect=200):
    """GETs /data/plugin/batchavg/<route> through a werkzeug test client; checks the status and
    that the body is strict JSON."""
    response = client.get("/data/plugin/batchavg/" + route)
    assert response.status_code == expect, (route, response.status_code, response.data[:500])
    return strict_json(response.data)


def wait_loaded(client, timeout=120):
    """The `runs` answer once discovery is done and no run is loading (the plugin loads in the
    background from start-up)."""
    deadline = time.time() + timeout
    while True:
        listing = get_json(client, "runs")
        if not listing.get("loading"):
            return listing
        assert time.time() < deadline, "runs still loading after %ss" % timeout
        time.sleep(0.05)


def wait_for(condition, timeout=60, what="condition"):
    """Polls `condition()` until it is truthy; returns its value."""
    deadline = time.time() + timeout
    while True:
        value = condition()
        if value:
            return value
        assert time.time() < deadline, "%s not met after %ss" % (what, timeout)
        time.sleep(0.05)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def tensorboard_process(logdir, *flags, timeout=90):
    """Runs `tensorboard --logdir LOGDIR --host 127.0.0.1 --port P FLAGS` and yields its base URL."""
    with tensorboard_server(logdir, *flags, timeout=timeout) as (base, _):
        yield base


def tensorboard_command(logdir, port, *flags):
    """`tensorboard --logdir LOGDIR` on 127.0.0.1:PORT from this Python, with FLAGS."""
    return [
        sys.executable,
        "-m",
        "tensorboard.main",
        "--logdir",
        logdir,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        *flags,
    ]


@contextlib.contextmanager
def tensorboard_server(logdir, *flags, timeout=90, env=None):
    """Like `tensorboard_process`, with the environment `env`; yields (base URL, process) once the
    plugin is listed, and stops the process on exit."""
    port = free_port()
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(tensorboard_command(logdir, port, *flags), stdout=log, stderr=subprocess.STDOUT, env=env)
    prefix = ""
    for i, flag in enumerate(flags):
        if flag.startswith("--path_prefix"):
            prefix = flag.split("=", 1)[1] if "=" in flag else flags[i + 1]
    base = "http://127.0.0.1:%d%s" % (port, prefix.rstrip("/"))
    try:
        deadline = time.time() + timeout
        while True:
            if proc.poll() is not None:
                log.seek(0)
                raise RuntimeError("tensorboard exited: %s" % log.read().decode(errors="replace")[-3000:])
            try:
                with urllib.request.urlopen(base + "/data/plugins_listing", timeout=5) as r:
                    if "batchavg" in json.loads(r.read()):
                        break
            except OSError:
                pass
            if time.time() > deadline:
                raise RuntimeError("tensorboard did not start within %ss" % timeout)
            time.sleep(0.3)
        yield base, proc
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def write_tf2_scalars(directory, columns, steps=None):
    """Writes {tag: values} with tf.summary.scalar (TF2 scalar tensors), one step per row.

    The writing loop runs in a tf.function, so 100,000 steps take seconds. Returns the event
    file's path.
    """
    import tensorflow as tf

    tags = list(columns)
    values = tf.constant(np.stack([np.asarray(columns[t], np.float32) for t in tags], axis=1))
    n = int(values.shape[0])
    steps = tf.constant(np.arange(n) if steps is None else np.asarray(steps), tf.int64)
    writer = tf.summary.create_file_writer(directory)

    @tf.function
    def write_all():
        with writer.as_default():
            for i in tf.range(n):
                with tf.name_scope("/"):  # tags as given, not under the loop's "while/" scope
                    for j, tag in enumerate(tags):
                        tf.summary.scalar(tag, values[i, j], step=steps[i])

    write_all()
    writer.close()
    return event_file(directory)


def tensorboard_provider(logdir, *flags):
    """TensorBoard's own data provider for LOGDIR, built as `tensorboard --logdir` builds it
    (the Python multiplexer, or the Rust data server with --load_fast=true)."""
    from tensorboard import program

    tb = program.TensorBoard()
    tb.configure(argv=[None, "--logdir", logdir, *flags])
    provider, _ = tb._make_data_provider()
    return provider


def tensorboard_smoothing(ys, weight):
    """Python transcription of TensorBoard's classicSmoothing
    (tensorboard/webapp/widgets/line_chart_v2/data_transformer.ts)."""
    ys = [float(y) for y in ys]
    initial = ys[0] if ys else None
    if all(y == initial for y in ys):  # JS ==: NaN never equals anything
        return list(ys)
    last = 0.0
    num_accum = 0
    smoothed = []
    for y in ys:
        if not math.isfinite(y):
            smoothed.append(y)
            continue
        last = last * weight + (1 - weight) * y
        num_accum += 1
        debias_weight = 1 if weight == 1 else 1 - math.pow(weight, num_accum)
        smoothed.append(last / debias_weight)
    return smoothed
