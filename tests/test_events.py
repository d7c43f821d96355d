"""The template decoder of event records gives exactly what protobuf parsing gives."""

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2, summary_pb2

from tb_batchavg.ingest import events, records
from tests import helpers

pytestmark = pytest.mark.usefixtures("kernels")  # the C kernels, then the numpy ones


def _records(path):
    data = open(path, "rb").read()
    return data, records.scan(data)


def _by_protobuf(data, scan):
    out, tags = {}, events.Tags()
    parts = events.collections.defaultdict(list)
    everything = np.arange(len(scan.starts))
    buf = np.frombuffer(data, dtype=np.uint8)
    events._decode_slowly(data, buf, scan.starts, scan.lengths, everything, tags, parts, tags.skipped)
    for (tag, tensor), chunks in parts.items():
        if not tensor or tag in tags.scalars:
            out[tag] = [np.concatenate([c[k] for c in chunks]) for k in range(4)]
    return out


def _assert_same(data, scan, bad=0):
    fast, found_bad = events.decode(data, scan.starts, scan.lengths, events.Tags())
    assert found_bad == bad
    slow = _by_protobuf(data, scan)
    assert sorted(fast) == sorted(slow)
    for tag in slow:
        for got, want in zip(fast[tag], slow[tag]):
            np.testing.assert_array_equal(got, want)
    return fast


def test_simple_values_with_varied_steps_and_same_length_tags(tmp_path):
    writer_dir = str(tmp_path)
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    writer = EventFileWriter(writer_dir)
    steps = [0, 1, 127, 128, 300, 16383, 16384, 2**40, -5, 7]
    for i, step in enumerate(steps):
        values = [
            summary_pb2.Summary.Value(tag=t, simple_value=v)
            for t, v in (("loss_a", i * 0.5), ("loss_b", -i), ("lr", np.inf if i == 3 else np.nan if i == 4 else 1.0))
        ]
        writer.add_event(event_pb2.Event(step=step, wall_time=100.0 + i, summary=summary_pb2.Summary(value=values)))
    writer.add_event(event_pb2.Event(step=3, wall_time=5.0))  # no summary
    writer.close()
    fast = _assert_same(*_records(helpers.event_file(writer_dir)))
    assert fast["loss_a"].step.tolist() == steps
    assert fast["loss_b"].value.tolist() == [-float(i) for i in range(len(steps))]


@pytest.mark.tf
def test_tf2_float_and_double_tensors_histograms_and_metadata(tmp_path):
    import tensorflow as tf

    writer = tf.summary.create_file_writer(str(tmp_path))
    with writer.as_default():
        for step in range(300):
            tf.summary.scalar("train/loss", 1.0 / (step + 1), step=step)
            tf.summary.scalar("train/grad_norm", tf.constant(step * 1e-3, tf.float64), step=step)
            if step % 50 == 0:
                tf.summary.histogram("weights", tf.random.normal([20]), step=step)
                tf.summary.text("note", "hello", step=step)
    writer.close()
    fast = _assert_same(*_records(helpers.event_file(str(tmp_path))))
    assert sorted(fast) == ["train/grad_norm", "train/loss"]  # histograms and text are not scalars
    assert len(fast["train/loss"].step) == 300
    np.testing.assert_allclose(fast["train/grad_norm"].value, np.arange(300) * 1e-3)


def test_tensorboardx_scalars(tmp_path):
    from tensorboardX import SummaryWriter

    writer = SummaryWriter(str(tmp_path))
    for step in range(200):
        writer.add_scalar("train/loss", 2.0 - step * 0.01, step)
        writer.add_scalar("train/learning_rate", 1e-3, step)
    writer.close()
    fast = _assert_same(*_records(helpers.event_file(str(tmp_path))))
    assert len(fast["train/loss"].step) == 200


@pytest.mark.parametrize("seed", range(3))
def test_random_corruption_of_values_never_changes_the_agreement(tmp_path, seed):
    """Flipping a byte of 20 records (data CRC left as it was): the decoder's CRC check skips
    exactly those 20, and the others decode as protobuf decodes them."""
    path = helpers.write_scalars(str(tmp_path), helpers.training_like(500, seed))
    data, scan = _records(path)
    rng = np.random.default_rng(seed)
    buf = bytearray(data)
    hit = rng.choice(len(scan.starts), size=20, replace=False)
    for i in hit:
        buf[int(scan.starts[i]) + 2] ^= int(rng.integers(1, 256))
    fast, bad = events.decode(bytes(buf), scan.starts, scan.lengths, events.Tags())
    assert bad == 20
    kept = np.setdiff1d(np.arange(len(scan.starts)), hit)
    clean = records.Scan(scan.starts[kept], scan.lengths[kept], scan.consumed, 0, None)
    _assert_same(bytes(buf), clean)
