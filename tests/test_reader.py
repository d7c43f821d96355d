"""reader: full-resolution event-file reading, checked against TensorBoard's own loaders.

References: TensorBoard's Python multiplexer (plugin_event_multiplexer, keeping every scalar),
TensorBoard's Rust data server (`--load_fast=true`) and its `/data/runs` route, on real files
written by tensorboard's writer (simple_value) and by tf.summary (TF2 scalar tensors).
"""

import os
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from tensorboard import context as tb_context
from tensorboard.backend.event_processing import plugin_event_multiplexer
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.summary.writer.event_file_writer import EventFileWriter
from tensorboard.util import tensor_util
from werkzeug.test import Client

from tb_batchavg.ingest import reader, records, steps
from tests import helpers

ALL_POINTS = "--samples_per_plugin=scalars=1000000"


# References ----------------------------------------------------------------------------------
def read_with_reader(r):
    """{run: {tag: (steps, wall_times, values)}} of runs with scalar data, from our reader."""
    out = {}
    for run in r.runs():
        tags = r.tags(run)
        if tags:
            out[run] = {t: tuple(np.asarray(c) for c in r.series(run, t)) for t in tags}
    return out


def read_with_multiplexer(*roots):
    """The same from TensorBoard's Python loader, every scalar kept. roots: (path, group name)."""
    mux = plugin_event_multiplexer.EventMultiplexer(tensor_size_guidance={"scalars": 0})
    for path, name in roots:
        mux.AddRunsFromDirectory(path, name)
    mux.Reload()
    out = {}
    for run, tags in mux.PluginRunToTagToContent("scalars").items():
        out[run] = {}
        for tag in tags:
            events = mux.Tensors(run, tag)
            out[run][tag] = (
                np.array([e.step for e in events], np.int64),
                np.array([e.wall_time for e in events]),
                np.array([tensor_util.make_ndarray(e.tensor_proto).item() for e in events]),
            )
    return out, sorted(mux.Runs())


def read_with_data_server(logdir, expected, timeout=60):
    """The same from TensorBoard's Rust data server, polled until it equals `expected` or times out
    (it loads in the background); returns its last answer."""
    provider = helpers.tensorboard_provider(logdir, "--load_fast=true", ALL_POINTS)
    ctx = tb_context.RequestContext()
    deadline = time.time() + timeout
    while True:
        listing = provider.list_scalars(ctx, experiment_id="", plugin_name="scalars")
        data = provider.read_scalars(ctx, experiment_id="", plugin_name="scalars", downsample=10**6)
        out = {
            run: {
                tag: (
                    np.array([d.step for d in points], np.int64),
                    np.array([d.wall_time for d in points]),
                    np.array([d.value for d in points]),
                )
                for tag, points in tags.items()
            }
            for run, tags in data.items()
            if listing.get(run)
        }
        if same(out, expected) or time.time() > deadline:
            return out
        time.sleep(0.3)


def same(a, b):
    if sorted(a) != sorted(b) or any(sorted(a[r]) != sorted(b[r]) for r in a):
        return False
    return all(np.array_equal(x, y, equal_nan=True) for r in a for t in a[r] for x, y in zip(a[r][t], b[r][t]))


def assert_same(got, want):
    assert sorted(got) == sorted(want)
    for run in want:
        assert sorted(got[run]) == sorted(want[run]), run
        for tag in want[run]:
            for name, g, w in zip(("step", "wall_time", "value"), got[run][tag], want[run][tag]):
                np.testing.assert_array_equal(g, w, err_msg="%s %s %s" % (run, tag, name))


def loaded(logdir="", logdir_spec=""):
    r = reader.LogdirReader(logdir, logdir_spec)
    r.reload()
    return r


def write_events(directory, steps, columns, suffix=""):
    """tensorboard's writer: one event per step with a simple_value per tag; returns the path."""
    writer = EventFileWriter(directory, filename_suffix=suffix)
    for i, step in enumerate(steps):
        values = [summary_pb2.Summary.Value(tag=t, simple_value=float(v[i])) for t, v in columns.items()]
        writer.add_event(event_pb2.Event(step=int(step), wall_time=1e9 + i, summary=summary_pb2.Summary(value=values)))
    writer.close()
    return helpers.event_file(directory)


def with_nonfinite(values):
    values = np.array(values, np.float32)
    values[[3, 10, 11]] = [np.nan, np.inf, -np.inf]
    return values


def record_offsets(data):
    """(header offset, body offset, body length) of each record of a well-formed file."""
    scan = records.scan(data)
    assert scan.consumed == len(data)
    return [(s - records.HEADER_BYTES, s, n) for s, n in zip(scan.starts.tolist(), scan.lengths.tolist())]


# A logdir of every kind of file --------------------------------------------------------------
@pytest.fixture(scope="module")
def mixed_logdir(tmp_path_factory):
    import tensorflow as tf

    root = tmp_path_factory.mktemp("mixed")
    columns = helpers.training_like(400, seed=1)
    columns["train/loss"] = with_nonfinite(columns["train/loss"])
    uneven = np.cumsum(np.random.default_rng(1).integers(1, 4, 400))
    helpers.write_scalars(str(root), columns, steps=uneven)  # the root run "."
    helpers.write_tf2_scalars(str(root / "tf2" / "train"), {"batch_loss": with_nonfinite(np.linspace(3, 1, 300))})
    helpers.write_scalars(str(root / "nested" / "a" / "b"), {"lr": np.full(20, 0.1)})
    # Two event files in one run: different and shared tags, the second continuing the first.
    write_events(str(root / "multi"), range(0, 100), {"loss": np.arange(100.0), "lr": np.ones(100)}, ".a")
    write_events(str(root / "multi"), range(100, 150), {"loss": -np.arange(50.0), "grad_norm": np.ones(50)}, ".b")
    # Eager tf.summary with summaries that are not scalars: only the scalar is read.
    with tf.summary.create_file_writer(str(root / "tf2" / "eager")).as_default():
        for step in range(5):
            tf.summary.scalar("epoch_loss", 1.0 / (step + 1), step=step)
            tf.summary.histogram("weights", tf.random.normal([50]), step=step)
            tf.summary.text("note", "step %d" % step, step=step)
            tf.summary.write("raw_tensor", tf.constant(float(step)), step=step)  # no scalar metadata
    os.makedirs(root / "empty_dir")
    return str(root)


@pytest.mark.tf
def test_reader_matches_tensorboard_python_loader(mixed_logdir):
    want, mux_runs = read_with_multiplexer((mixed_logdir, None))
    r = loaded(mixed_logdir)
    assert r.runs() == mux_runs == [".", "multi", "nested/a/b", "tf2/eager", "tf2/train"]
    got = read_with_reader(r)
    assert_same(got, want)
    assert sorted(got["tf2/eager"]) == ["epoch_loss"]
    assert len(got["multi"]["loss"][0]) == 150


@pytest.mark.tf
def test_reader_matches_tensorboard_data_server(mixed_logdir):
    want = read_with_reader(loaded(mixed_logdir))
    assert_same(read_with_data_server(mixed_logdir, want), want)


@pytest.mark.tf
def test_nonfinite_values_are_kept(mixed_logdir):
    r = loaded(mixed_logdir)
    for run, tag in ((".", "train/loss"), ("tf2/train", "batch_loss")):
        values = r.series(run, tag).value
        assert np.isnan(values[3]) and values[10] == np.inf and values[11] == -np.inf
        assert np.isfinite(np.delete(values, [3, 10, 11])).all()


# Run naming ----------------------------------------------------------------------------------
def tensorboard_runs(app, expected, timeout=60):
    """TensorBoard's /data/runs, polled until it lists `expected` (its loader runs in the background)."""
    client = Client(app)
    deadline = time.time() + timeout
    while True:
        runs = sorted(client.get("/data/runs").json)
        if runs == sorted(expected) or time.time() > deadline:
            return runs
        time.sleep(0.2)


@pytest.mark.tf
@pytest.mark.parametrize("load_fast", ["false", "true"])
def test_run_names_match_tensorboard(mixed_logdir, load_fast):
    app = helpers.make_app(mixed_logdir, "--load_fast=" + load_fast, "--reload_interval=0")
    ours = loaded(mixed_logdir).runs()
    assert tensorboard_runs(app, ours) == ours
    assert [e["run"] for e in helpers.wait_loaded(Client(app))["runs"]] == ours


def test_logdir_spec_names_match_tensorboard(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    helpers.write_scalars(str(a), {"loss": np.arange(5.0)})
    helpers.write_scalars(str(a / "sub"), {"loss": np.arange(6.0)})
    helpers.write_scalars(str(b / "x" / "y"), {"loss": np.arange(7.0)})
    spec = "name1:%s,name2:%s" % (a, b)
    ours = loaded(logdir_spec=spec)
    assert ours.runs() == ["name1/.", "name1/sub", "name2/x/y"]
    app = helpers.make_app(None, "--logdir_spec", spec, "--load_fast=false", "--reload_interval=0")
    assert tensorboard_runs(app, ours.runs()) == ours.runs()
    assert [e["run"] for e in helpers.wait_loaded(Client(app))["runs"]] == ours.runs()
    want, _ = read_with_multiplexer((str(a), "name1"), (str(b), "name2"))
    assert_same(read_with_reader(ours), want)


# Growing, truncated, corrupted and replaced files ---------------------------------------------
def count_reads(monkeypatch):
    """Counts records.scan calls (with the bytes each got) and reads of files by the reader, in
    this thread (the background readers of earlier tests' apps may still be reading theirs)."""
    calls = {"scan": [], "open": 0}
    scan, read_at = records.scan, reader._read_at
    here = threading.get_ident()

    def counting_scan(data, **kwargs):
        if threading.get_ident() == here:
            calls["scan"].append(len(data))
        return scan(data, **kwargs)

    def counting_read(*args):
        if threading.get_ident() == here:
            calls["open"] += 1
        return read_at(*args)

    monkeypatch.setattr(records, "scan", counting_scan)
    monkeypatch.setattr(reader, "_read_at", counting_read)
    return calls


def test_growing_file_at_every_kind_of_cut(tmp_path, monkeypatch):
    """A file appended in pieces cut anywhere (inside headers, bodies, CRCs): each reload holds
    exactly the complete records, as TensorBoard's loader reads them from the same bytes."""
    source = helpers.write_scalars(str(tmp_path / "source"), helpers.training_like(200, seed=3))
    data = open(source, "rb").read()
    run_dir = tmp_path / "logdir" / "run"
    os.makedirs(run_dir)
    path = run_dir / os.path.basename(source)
    snapshot = tmp_path / "snapshot" / "run"
    os.makedirs(snapshot)
    r = reader.LogdirReader(str(tmp_path / "logdir"))
    calls = count_reads(monkeypatch)
    cuts = [0, 5, 12, 30, 1000, 1003, 1011, 4000, 7777, len(data) - 3, len(data)]
    for previous, cut in zip([0] + cuts, cuts):
        with open(path, "ab") as f:
            f.write(data[previous:cut])
        calls["scan"].clear()
        r.reload()
        assert sum(calls["scan"]) <= cut - previous + 200  # appended bytes (+ a pending partial record)
        shutil.copyfile(path, snapshot / path.name)
        want, _ = read_with_multiplexer((str(snapshot.parent), None))
        assert_same(read_with_reader(r), want)
        assert r.get("run").health() == {"bad_records": 0, "corrupt_files": [], "errors": [], "skipped_values": {}}
    assert len(r.series("run", "train/loss").step) == 200

    # An unchanged logdir: nothing is opened or parsed, and the data version stays.
    version = r.get("run").version
    calls["scan"].clear()
    calls["open"] = 0
    r.reload()
    r.reload()
    assert (calls["scan"], calls["open"], r.get("run").version) == ([], 0, version)


@pytest.mark.tf
def test_growing_tf2_file_reads_only_appended_bytes(tmp_path, monkeypatch):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(tmp_path / "run"))
    r = reader.LogdirReader(str(tmp_path))
    calls = count_reads(monkeypatch)
    values = np.random.default_rng(4).standard_normal(30).astype(np.float32)
    size = 0
    for start, stop in ((0, 10), (10, 11), (11, 30)):
        with writer.as_default():
            for step in range(start, stop):
                tf.summary.scalar("loss", values[step], step=step)
        writer.flush()
        calls["scan"].clear()
        r.reload()
        new_size = os.path.getsize(helpers.event_file(str(tmp_path / "run")))
        assert calls["scan"] == [new_size - size]
        size = new_size
        series = r.series("run", "loss")
        np.testing.assert_array_equal(series.step, np.arange(stop))
        np.testing.assert_array_equal(series.value, values[:stop])
    writer.close()


def test_a_growing_file_is_appended_to_its_columns_without_a_copy(tmp_path):
    """TensorBoard's event writer appending to a run between reloads: after the first append
    (which gives the columns room), later reloads write the new points after the held ones, the
    series taken before stay as they were, and the columns equal a fresh reader's; the memory
    counted includes the room."""
    writer = EventFileWriter(str(tmp_path / "run"))
    r = reader.LogdirReader(str(tmp_path))
    taken = []
    for start, stop in ((0, 1000), (1000, 1010), (1010, 1020), (1020, 1200)):
        for step in range(start, stop):
            value = summary_pb2.Summary.Value(tag="loss", simple_value=1.0 / (step + 1))
            writer.add_event(
                event_pb2.Event(step=step, wall_time=1e9 + step, summary=summary_pb2.Summary(value=[value]))
            )
        writer.flush()
        r.reload()
        taken.append(r.series("run", "loss"))
    writer.close()
    assert np.shares_memory(taken[1].step, taken[2].step) and np.shares_memory(taken[2].value, taken[3].value)
    for series, stop in zip(taken, (1000, 1010, 1020, 1200)):
        np.testing.assert_array_equal(series.step, np.arange(stop))
    fresh = reader.LogdirReader(str(tmp_path))
    fresh.reload()
    for field in ("step", "wall_time", "value"):
        np.testing.assert_array_equal(getattr(taken[-1], field), getattr(fresh.series("run", "loss"), field))
    assert r.get("run").nbytes >= 3 * taken[-1].step.base.nbytes > fresh.get("run").nbytes


@pytest.mark.parametrize("restart", [False, True])
def test_the_last_file_of_a_run_growing_appends_to_the_run(tmp_path, restart):
    """A run of two files, the first finished and the second growing (a training restarted into a
    new file): reloads append the second file's new points to the run's columns without copying
    them, and the run equals a fresh reader's after every reload, also when the growing file
    itself restarts from a checkpoint (then the columns are folded again)."""
    first = EventFileWriter(str(tmp_path / "run"))
    for step in range(500):
        first.add_event(scalar_event("loss", step, 1.0 / (step + 1)))
    first.close()
    os.replace(helpers.event_file(str(tmp_path / "run")), tmp_path / "run" / "events.out.tfevents.1.a")
    second = EventFileWriter(str(tmp_path / "run"))  # named by the time now: it sorts last
    r = reader.LogdirReader(str(tmp_path))
    taken, step = [], 400  # the second file restarts at step 400
    for count in (100, 10, 10, 10, 5):  # (within the room the second append gives the file)
        if restart and count == 5:
            step -= 30
        for _ in range(count):
            second.add_event(scalar_event("loss", step, -float(step)))
            step += 1
        second.flush()
        r.reload()
        taken.append(r.series("run", "loss"))
        fresh = reader.LogdirReader(str(tmp_path))
        fresh.reload()
        for field in ("step", "wall_time", "value"):
            np.testing.assert_array_equal(getattr(taken[-1], field), getattr(fresh.series("run", "loss"), field))
    second.close()
    assert np.shares_memory(taken[2].step, taken[3].step)  # appended in place
    assert np.shares_memory(taken[3].value, taken[4].value) != restart  # a restart folds again
    assert taken[1].step.tolist() == list(range(510)) and taken[3].value.tolist()[-1] == -529.0


def scalar_event(tag, step, value):
    value = summary_pb2.Summary.Value(tag=tag, simple_value=value)
    return event_pb2.Event(step=step, wall_time=1e9 + step, summary=summary_pb2.Summary(value=[value]))


def test_truncated_tail_is_left_and_completed_later(tmp_path):
    path = helpers.write_scalars(str(tmp_path / "run"), {"loss": np.arange(50.0)})
    data = open(path, "rb").read()
    last_header = record_offsets(data)[-1][0]
    with open(path, "wb") as f:
        f.write(data[: last_header + 20])  # the last record's header and part of its body
    r = loaded(str(tmp_path))
    np.testing.assert_array_equal(r.series("run", "loss").step, np.arange(49))
    assert r.get("run").health()["bad_records"] == 0
    with open(path, "ab") as f:
        f.write(data[last_header + 20 :])
    assert r.get("run").reload() is True
    np.testing.assert_array_equal(r.series("run", "loss").value, np.arange(50.0))


def corrupt(path, record, byte_in_record):
    """Flips one bit of a record (byte offset from the record's header) of the file at `path`."""
    data = bytearray(open(path, "rb").read())
    header = record_offsets(bytes(data))[record][0]
    data[header + byte_in_record] ^= 0x10
    with open(path, "wb") as f:
        f.write(data)


def test_bad_data_crc_skips_one_record_and_is_counted(tmp_path):
    path = helpers.write_scalars(str(tmp_path / "run"), {"loss": np.arange(100.0)})
    corrupt(path, 31, records.HEADER_BYTES + 5)  # record 0 is the file_version event: this is step 30
    r = loaded(str(tmp_path))
    np.testing.assert_array_equal(r.series("run", "loss").step, np.delete(np.arange(100), 30))
    assert r.get("run").health() == {"bad_records": 1, "corrupt_files": [], "errors": [], "skipped_values": {}}
    client = Client(helpers.make_app(str(tmp_path), "--load_fast=false", "--reload_interval=0"))
    (entry,) = helpers.wait_loaded(client)["runs"]
    assert entry["health"] == {"bad_records": 1, "corrupt_files": [], "errors": [], "skipped_values": {}}
    assert entry["count"] == {"loss": 99}


def test_corrupt_header_stops_the_file_until_repaired(tmp_path):
    path = helpers.write_scalars(str(tmp_path / "run"), {"loss": np.arange(100.0)})
    intact = open(path, "rb").read()
    corrupt(path, 41, 2)  # the length of step 40's record
    r = loaded(str(tmp_path))
    np.testing.assert_array_equal(r.series("run", "loss").step, np.arange(40))
    assert r.get("run").health()["corrupt_files"] == [os.path.basename(path)]
    r.get("run").reload()  # retried: still corrupt, nothing duplicated
    np.testing.assert_array_equal(r.series("run", "loss").step, np.arange(40))
    with open(path, "wb") as f:
        f.write(intact)
    r.get("run").reload()
    np.testing.assert_array_equal(r.series("run", "loss").step, np.arange(100))
    assert r.get("run").health() == {"bad_records": 0, "corrupt_files": [], "errors": [], "skipped_values": {}}


def restart_logdir(root, resume_at, same_file):
    """Steps 0..199 logged, then a restart from a checkpoint at `resume_at` logging to step 249:
    in a second event file (a new process) or appended to the first."""
    first = {"loss": np.arange(200.0), "lr": np.full(200, 0.1)}
    second = {"loss": 1000.0 + np.arange(resume_at, 250), "lr": np.full(250 - resume_at, 0.2)}
    if same_file:
        steps = list(range(200)) + list(range(resume_at, 250))
        write_events(str(root), steps, {t: np.concatenate((first[t], second[t])) for t in first})
    else:
        write_events(str(root), range(200), first, ".0")
        write_events(str(root), range(resume_at, 250), second, ".1")


@pytest.fixture
def restarts(tmp_path):
    restart_logdir(tmp_path / "new_file", 150, same_file=False)
    restart_logdir(tmp_path / "same_file", 150, same_file=True)
    restart_logdir(tmp_path / "at_last_step", 199, same_file=False)
    return str(tmp_path)


def test_restart_purges_rewound_steps(restarts):
    got = read_with_reader(loaded(restarts))
    for run in ("new_file", "same_file"):
        steps, _, values = got[run]["loss"]
        np.testing.assert_array_equal(steps, np.arange(250))
        np.testing.assert_array_equal(values, np.concatenate((np.arange(150.0), 1000.0 + np.arange(150, 250))))
        np.testing.assert_array_equal(got[run]["lr"][2], np.repeat([0.1, 0.2], [150, 100]).astype(np.float32))
    steps, _, values = got["at_last_step"]["loss"]
    np.testing.assert_array_equal(steps, np.arange(250))
    assert values[198:201].tolist() == [198.0, 1199.0, 1200.0]  # step 199: the restart's record


def test_restart_purge_matches_tensorboard_data_server(restarts):
    """TensorBoard's Rust loader preempts steps >= a rewound step, as our reader does. (Its Python
    loader does not for brain.Event:2 files: it purges only on a SessionLog START event.)"""
    got = read_with_reader(loaded(restarts))
    assert_same(read_with_data_server(restarts, got), got)


def test_restart_seen_across_reloads(tmp_path):
    r = reader.LogdirReader(str(tmp_path))
    write_events(str(tmp_path / "run"), range(200), {"loss": np.arange(200.0)}, ".0")
    r.reload()
    assert len(r.series("run", "loss").step) == 200
    write_events(str(tmp_path / "run"), range(150, 250), {"loss": 1000.0 + np.arange(150, 250)}, ".1")
    r.reload()
    series = r.series("run", "loss")
    np.testing.assert_array_equal(series.step, np.arange(250))
    np.testing.assert_array_equal(series.value[148:152], [148.0, 149.0, 1150.0, 1151.0])


def test_zero_length_files(tmp_path):
    os.makedirs(tmp_path / "empty_run")
    open(tmp_path / "empty_run" / "events.out.tfevents.1.host", "wb").close()
    helpers.write_scalars(str(tmp_path / "run"), {"loss": np.arange(10.0)})
    open(tmp_path / "run" / "events.out.tfevents.0.host", "wb").close()
    r = loaded(str(tmp_path))
    assert r.runs() == ["empty_run", "run"]
    assert r.tags("empty_run") == []
    assert len(r.series("run", "loss").step) == 10
    assert (
        r.get("empty_run").health()
        == r.get("run").health()
        == {"bad_records": 0, "corrupt_files": [], "errors": [], "skipped_values": {}}
    )
    # The empty file starts receiving data.
    data = open(helpers.write_scalars(str(tmp_path / "source"), {"loss": np.arange(3.0)}), "rb").read()
    with open(tmp_path / "empty_run" / "events.out.tfevents.1.host", "ab") as f:
        f.write(data)
    r.reload()
    np.testing.assert_array_equal(r.series("empty_run", "loss").value, [0.0, 1.0, 2.0])


def test_file_replaced_by_a_shorter_one(tmp_path):
    path = write_events(str(tmp_path / "run"), range(1000), {"loss": np.arange(1000.0)})
    r = loaded(str(tmp_path))
    assert len(r.series("run", "loss").step) == 1000
    shorter = write_events(str(tmp_path / "other"), range(100), {"loss": -np.arange(100.0)})
    shutil.move(shorter, path)
    assert r.get("run").reload() is True
    series = r.series("run", "loss")
    np.testing.assert_array_equal(series.step, np.arange(100))
    np.testing.assert_array_equal(series.value, -np.arange(100.0))


@pytest.mark.tf  # ram:// is TensorFlow's filesystem
def test_logdir_on_another_filesystem_through_gfile(tmp_path):
    """A logdir on a non-local filesystem (TensorFlow's in-memory ram://) is listed, read and
    tailed through TensorBoard's gfile layer."""
    gfile = reader.tf.io.gfile
    logdir = "ram://batchavg-%d" % os.getpid()
    first = helpers.write_scalars(str(tmp_path / "a"), {"loss": np.arange(5.0)})
    more = helpers.write_scalars(str(tmp_path / "b"), {"loss": np.arange(5.0, 8.0)}, steps=[5, 6, 7])
    path = logdir + "/run/" + os.path.basename(first)
    gfile.makedirs(logdir + "/run")
    with gfile.GFile(path, "wb") as f:
        f.write(open(first, "rb").read())
    r = loaded(logdir)
    assert r.readable and r.runs() == ["run"]
    np.testing.assert_array_equal(r.series("run", "loss").value, np.arange(5.0))
    with gfile.GFile(path, "ab") as f:
        f.write(open(more, "rb").read())
    r.reload()
    np.testing.assert_array_equal(r.series("run", "loss").step, np.arange(8))
    gfile.rmtree(logdir)


def test_unreadable_logdir_and_vanished_files(tmp_path):
    assert not reader.LogdirReader(str(tmp_path / "missing")).readable
    path = helpers.write_scalars(str(tmp_path / "run"), {"loss": np.arange(10.0)})
    r = loaded(str(tmp_path))
    os.remove(path)
    shutil.rmtree(tmp_path / "run")
    assert r.get("run").reload() is False  # the directory is gone: data kept, error reported
    assert len(r.series("run", "loss").step) == 10
    assert r.get("run").health()["errors"]


def test_merge_steps_purges_like_the_reservoir():
    """merge_steps against a direct transcription of the Rust reservoir's rule: a record at step s
    drops the held records with steps >= s, then is appended."""
    rng = np.random.default_rng(5)
    for _ in range(200):
        held_steps = np.unique(rng.integers(0, 30, rng.integers(0, 10)))
        new_steps = rng.integers(0, 30, rng.integers(0, 10))
        held = reader.Series(held_steps, held_steps * 0.0, held_steps + 0.5)
        new = reader.Series(new_steps, new_steps * 0.0, np.arange(len(new_steps)) + 100.0)
        expect = list(zip(held.step.tolist(), held.value.tolist()))
        for step, value in zip(new.step.tolist(), new.value.tolist()):
            expect = [(s, v) for s, v in expect if s < step] + [(step, value)]
        got = steps.merge_steps(held, new)
        assert list(zip(got.step.tolist(), got.value.tolist())) == expect


@pytest.mark.tf  # meaningful where TensorFlow is installed (and the fixture writes with it)
def test_reading_a_local_logdir_imports_no_tensorflow(mixed_logdir):
    # `tb-batchavg report` reads in worker processes: TensorFlow's import (2-3 s each) is not theirs.
    script = (
        "import sys\n"
        "from tb_batchavg.ingest.reader import LogdirReader\n"
        "r = LogdirReader(sys.argv[1])\n"
        "r.reload()\n"
        "assert r.runs(), 'no runs read'\n"
        "assert 'tensorflow' not in sys.modules, 'TensorFlow was imported'\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(mixed_logdir)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.tf
def test_a_corrupt_histogram_costs_no_scalar_and_a_corrupt_scalar_is_counted(tmp_path):
    import tensorflow as tf

    with tf.summary.create_file_writer(str(tmp_path / "run")).as_default():
        for step in range(6):
            tf.summary.scalar("loss", 1.0 / (step + 1), step=step)
            tf.summary.histogram("weights", tf.random.normal([50], seed=step), step=step)
    path = helpers.event_file(str(tmp_path / "run"))
    data = open(path, "rb").read()
    offsets = record_offsets(data)
    histograms = [h for h, s, n in offsets if b"histograms" in data[s : s + n]]
    scalars = [h for h, s, n in offsets if b"scalars" in data[s : s + n]]
    # a bit flipped in the middle of a histogram's body: its bytes are never used
    corrupt(path, [h for h, _, _ in offsets].index(histograms[2]), records.HEADER_BYTES + 40)
    r = loaded(str(tmp_path))
    np.testing.assert_array_equal(r.series("run", "loss").value, np.float32(1.0 / np.arange(1, 7)))
    assert r.get("run").health()["bad_records"] == 0
    # one in a scalar's (of the original file): that point is skipped and counted
    with open(path, "wb") as f:
        f.write(data)
    corrupt(path, [h for h, _, _ in offsets].index(scalars[4]), records.HEADER_BYTES + 5)
    r = loaded(str(tmp_path))
    np.testing.assert_array_equal(r.series("run", "loss").step, [0, 1, 2, 3, 5])
    assert r.get("run").health()["bad_records"] == 1
