"""The demo: a short run of `tb-batchavg demo` writes logs that the plugin's reader reads with
every role detected, logs the schedules it claims, reuses finished logs, and serves the tab."""

import contextlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

import numpy as np
import pytest

from tb_batchavg import cli, demo_runs
from tb_batchavg.ingest.reader import LogdirReader
from tb_batchavg.metadata import detect_roles

# Writes its logs with TensorFlow.
pytestmark = pytest.mark.tf

STEPS = 120


@pytest.fixture(scope="module")
def demo_logdir(tmp_path_factory):
    logdir = str(tmp_path_factory.mktemp("demo"))
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        status = cli.main(["demo", "--logdir", logdir, "--steps", str(STEPS), "--no-serve"])
    assert status == 0
    return logdir, stderr.getvalue()


def _event_files(logdir):
    return {
        os.path.join(root, name): os.path.getsize(os.path.join(root, name))
        for root, _, names in os.walk(logdir)
        for name in names
        if "tfevents" in name
    }


def test_demo_logs_are_read_with_every_role(demo_logdir):
    logdir, stderr = demo_logdir
    for run in demo_runs.RUNS:
        assert "%s" % run in stderr and "%d/%d batches" % (STEPS, STEPS) in stderr
    reader = LogdirReader(logdir)
    reader.reload()
    assert sorted(reader.runs()) == sorted(demo_runs.RUNS)
    for run in demo_runs.RUNS:
        roles = detect_roles(reader.tags(run))
        assert roles == {
            "loss": "train/loss",
            "grad_norm": "train/grad_norm",
            "learning_rate": "train/learning_rate",
        }, run
        for tag in roles.values():
            series = reader.series(run, tag)
            np.testing.assert_array_equal(series.step, np.arange(STEPS))
            assert np.isfinite(series.value[:10]).all()


def test_demo_runs_follow_their_schedules(demo_logdir):
    logdir, _ = demo_logdir
    reader = LogdirReader(logdir)
    reader.reload()
    step = np.arange(STEPS, dtype=np.float64)
    # Formulas of the three schedules, written out (Keras's CosineDecay with warm-up,
    # PolynomialDecay with power 1, PiecewiseConstantDecay).
    warmup = STEPS // 20
    decay_steps = STEPS - warmup
    cosine = 0.5 * (1 + np.cos(np.pi * np.minimum(step - warmup, decay_steps) / decay_steps))
    expected = {
        "healthy": np.where(step < warmup, 3e-3 * step / warmup, 3e-3 * (0.99 * cosine + 0.01)),
        "lr_too_high": 0.01 + (0.15 - 0.01) * step / STEPS,
        "sgd_step_decay": np.where(step <= STEPS // 2, 0.2, np.where(step <= 3 * STEPS // 4, 0.02, 0.002)),
    }
    for run, rate in expected.items():
        np.testing.assert_allclose(
            reader.series(run, "train/learning_rate").value, rate, rtol=1e-5, atol=1e-9, err_msg=run
        )


def test_demo_reuses_finished_logs(demo_logdir):
    logdir, _ = demo_logdir
    before = _event_files(logdir)
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        assert cli.main(["demo", "--logdir", logdir, "--steps", str(STEPS), "--no-serve"]) == 0
    assert "Using the demo logs" in stderr.getvalue()
    assert _event_files(logdir) == before


def test_demo_never_deletes_files_it_did_not_write(tmp_path):
    run_dir = tmp_path / "healthy"
    run_dir.mkdir()
    (run_dir / "notes.txt").write_text("mine")
    with pytest.raises(RuntimeError, match="refusing"):
        demo_runs.write_logs(str(tmp_path), steps=5)
    assert (run_dir / "notes.txt").read_text() == "mine"


def test_demo_serves_the_tab_on_localhost_until_interrupted(demo_logdir):
    logdir, _ = demo_logdir
    process = subprocess.Popen(
        [sys.executable, "-m", "tb_batchavg.cli", "demo", "--logdir", logdir, "--steps", str(STEPS), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        deadline = time.time() + 90
        url = None
        for line in process.stdout:
            if line.startswith("Batch Averages tab: "):
                url = line.split()[3]
                break
            assert time.time() < deadline
        assert url is not None and url.startswith("http://127.0.0.1:") and url.endswith("/#batchavg")
        base = url[: -len("#batchavg")]
        with urllib.request.urlopen(base + "data/plugins_listing", timeout=10) as response:
            assert "batchavg" in json.loads(response.read())
        with urllib.request.urlopen(base + "data/plugin/batchavg/runs", timeout=30) as response:
            assert response.status == 200
        process.send_signal(signal.SIGINT)
        assert process.wait(30) == 0
        with pytest.raises(OSError):
            urllib.request.urlopen(base + "data/plugins_listing", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def _serving(command, **kwargs):
    """Starts `command` (the demo wrapper); returns (process, base URL) once it serves."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, **kwargs)
    for line in process.stdout:
        if line.startswith("Batch Averages tab: "):
            return process, line.split()[3][: -len("#batchavg")]
    raise AssertionError("the demo never served (exit %s)" % process.wait())


def _tensorboard_children(pid):
    children = open("/proc/%d/task/%d/children" % (pid, pid)).read().split()
    return [int(c) for c in children]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_demo_wrapper_stops_tensorboard_on_a_signal_even_with_sigint_ignored(demo_logdir, signum):
    """Started from a shell that ignores SIGINT (as a CI step may be): SIGTERM or SIGINT to the
    wrapper stops it and TensorBoard with it; nothing is left serving with parent 1."""
    logdir, _ = demo_logdir
    ignore_sigint = lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)  # noqa: E731
    process, base = _serving(
        [sys.executable, "-m", "tb_batchavg.cli", "demo", "--logdir", logdir, "--steps", str(STEPS), "--port", "0"],
        preexec_fn=ignore_sigint,
    )
    try:
        (child,) = _tensorboard_children(process.pid)
        process.send_signal(signum)
        process.wait(30)
        deadline = time.time() + 30
        while os.path.exists("/proc/%d" % child) and open("/proc/%d/stat" % child).read().split()[2] != "Z":
            assert time.time() < deadline, "TensorBoard still running after the wrapper stopped"
            time.sleep(0.1)
        with pytest.raises(OSError):
            urllib.request.urlopen(base + "data/plugins_listing", timeout=5)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_tensorboard_stops_when_the_wrapper_is_killed(demo_logdir):
    logdir, _ = demo_logdir
    process, base = _serving(
        [sys.executable, "-m", "tb_batchavg.cli", "demo", "--logdir", logdir, "--steps", str(STEPS), "--port", "0"]
    )
    (child,) = _tensorboard_children(process.pid)
    process.kill()
    process.wait()
    deadline = time.time() + 30
    while os.path.exists("/proc/%d" % child) and open("/proc/%d/stat" % child).read().split()[2] != "Z":
        assert time.time() < deadline, "TensorBoard left serving after its wrapper was killed"
        time.sleep(0.1)
