"""Every point our reader gives, for the files of each real writer (tests/corpus.py), equals what
TensorBoard's own loaders give on the same files: the run names, the scalar tags of each run, and
per tag the count, steps, wall times and values (NaN-aware)."""

import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator, plugin_event_multiplexer
from tensorboard.util import tensor_util

from tb_batchavg.ingest import records
from tb_batchavg.ingest.reader import LogdirReader
from tests import corpus

# Writes its logs with TensorFlow.
pytestmark = pytest.mark.tf

# Points per tag: a few thousand values per run; TF2's eager writer costs about 1 ms a value.
N = {"tf2_eager": 1000}
SIMPLE_VALUE_WRITERS = ("tf1_simple", "tbx", "tbx_display_name", "torch", "mixed_tbx")


def latest_wins(steps, wall_times, values):
    """The reader's documented rule applied to points in file order: a step not above every step
    held discards the held points at and after it, so the latest point of a step wins. (None of
    the corpus's writers repeats a step within a tag, so this is TensorBoard's own list.)"""
    held = []
    for point in zip(steps, wall_times, values):
        while held and held[-1][0] >= point[0]:
            held.pop()
        held.append(point)
    return [np.array(c, dtype) for c, dtype in zip(zip(*held), (np.int64, np.float64, np.float64))]


def assert_points_equal(reader, run, points, source):
    """points: {tag: [(step, wall_time, value)] in file order} from TensorBoard's `source`.
    Checks every tag's count first (all tags in one message), then steps, wall times and values."""
    expected = {tag: latest_wins(*zip(*p)) for tag, p in points.items()}
    got = {tag: reader.series(run, tag) for tag in points}
    lost = [
        "run %r tag %r: %s points, TensorBoard %d (%s)"
        % (run, tag, None if got[tag] is None else len(got[tag].step), len(expected[tag][0]), source)
        for tag in points
        if got[tag] is None or len(got[tag].step) != len(expected[tag][0])
    ]
    assert not lost, "\n".join(lost)
    for tag, (steps, wall_times, values) in expected.items():
        where = "run %r tag %r (%s)" % (run, tag, source)
        np.testing.assert_array_equal(got[tag].step, steps, err_msg=where + ": steps")
        np.testing.assert_array_equal(got[tag].wall_time, wall_times, err_msg=where + ": wall times")
        np.testing.assert_array_equal(got[tag].value, values, err_msg=where + ": values")  # NaN == NaN


def assert_same_as_tensorboard(logdir, simple_values):
    """Compares LogdirReader(logdir) with TensorBoard's plugin EventAccumulator (tensors, which
    holds simple values converted the way TensorBoard does) and, for writers of simple values,
    also its legacy EventAccumulator (scalars). Returns {run: {tag: points}}."""
    reader = LogdirReader(logdir)
    reader.reload()
    multiplexer = plugin_event_multiplexer.EventMultiplexer().AddRunsFromDirectory(logdir)
    assert sorted(reader.runs()) == sorted(multiplexer.Runs())
    counts = {}
    for run, path in sorted(multiplexer.RunPaths().items()):
        accumulator = plugin_event_accumulator.EventAccumulator(path, size_guidance={"tensors": 0})
        accumulator.Reload()
        tags = sorted(accumulator.PluginTagToContent("scalars") if "scalars" in accumulator.ActivePlugins() else ())
        assert reader.tags(run) == tags, "run %r" % run
        points = {
            tag: [
                (e.step, e.wall_time, tensor_util.make_ndarray(e.tensor_proto).item()) for e in accumulator.Tensors(tag)
            ]
            for tag in tags
        }
        assert_points_equal(reader, run, points, "tensors")
        if simple_values:
            legacy = event_accumulator.EventAccumulator(path, size_guidance={"scalars": 0})
            legacy.Reload()
            assert sorted(legacy.Tags()["scalars"]) == tags, "run %r" % run
            points = {tag: [(e.step, e.wall_time, e.value) for e in legacy.Scalars(tag)] for tag in tags}
            assert_points_equal(reader, run, points, "scalars")
        counts[run] = {tag: len(reader.series(run, tag).step) for tag in tags}
    return counts


@pytest.mark.parametrize("name", list(corpus.WRITERS))
def test_every_point_equals_tensorboards(name, tmp_path, monkeypatch):
    if not corpus.available(name):
        pytest.skip("PyTorch is not installed here (pip install torch): its writer cannot run")
    corpus.WRITERS[name](str(tmp_path), N.get(name, 2000))
    for kernels in (records._kernels, None):  # the C kernels, then the numpy ones
        monkeypatch.setattr(records, "_kernels", kernels)
        counts = assert_same_as_tensorboard(str(tmp_path), name in SIMPLE_VALUE_WRITERS)
        assert any(counts.values()), "the writer wrote no scalars"


def test_tf1_scalar_pb_across_read_chunks(tmp_path):
    """FileWriter strips the scalars metadata from every value of a tag but its first. With tags
    of 400 characters, 60,000 values make a 25 MB file: records of a tag whose metadata is in an
    earlier chunk, and the rest of the metadata record's own chunk, must all be read."""
    tags = ("x" * 400 + "/loss",)
    corpus.write_tf1_scalar_pb(str(tmp_path), 60_000, tags=tags)
    (name,) = [n for n in os.listdir(tmp_path) if "tfevents" in n]
    assert os.path.getsize(tmp_path / name) > 3 * (8 << 20)
    counts = assert_same_as_tensorboard(str(tmp_path), simple_values=False)
    assert counts == {".": {tags[0] + "/scalar_summary": 60_000}}


# --- Tensor dtypes under the scalars plugin -----------------------------------------------------

# Three values per dtype; the real ones are read as float64 of the numpy value, bool as 0/1.
REAL = {
    "float16": [1.5, np.inf, -0.25],
    "bfloat16": [1.5, -2.0, np.nan],
    "float32": [0.1, -3.5, np.nan],
    "float64": [0.1, 1e300, -np.inf],
    "bool": [True, False, True],
    "int8": [-128, 0, 127],
    "uint8": [0, 7, 255],
    "int16": [-300, 0, 300],
    "uint16": [0, 1, 65535],
    "int32": [-(2**31), 0, 2**31 - 1],
    "uint32": [0, 2**32 - 1, 5],
    "int64": [-(2**40) - 3, 0, 2**53],
    "uint64": [0, 2**53, 9],
}
SKIPPED = {
    "complex64": [1 + 2j, 0j, -1j],
    "complex128": [1j, 2j, 3j],
    "string": [b"a", b"bc", b""],
    "qint8": [-5, 0, 5],
    "quint8": [0, 9, 200],
    "qint32": [-7, 0, 7],
}


def _write_dtypes(tmp_path):
    """Run "typed": tensorboard's EventFileWriter with tensors made by tensor_util.make_tensor_proto
    (TensorBoard's; TensorFlow's for bfloat16 and the quantized types, which TensorBoard's cannot
    make): values in *_val fields, scalars metadata in every record. Run "content": TF2's
    `tf.summary.write` of each dtype (values in `tensor_content`; strings in string_val)."""
    import tensorflow as tf
    from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2
    from tensorboard.plugins.scalar import metadata
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    scalars = metadata.create_summary_metadata(display_name=None, description=None)
    writer = EventFileWriter(str(tmp_path / "typed"))
    for tag, values in {**REAL, **SKIPPED}.items():
        for step, v in enumerate(values):
            if tag == "bfloat16" or tag.startswith("q"):
                dtype = tf.as_dtype(tag)
                made = tf.make_tensor_proto(np.array(v, dtype.as_numpy_dtype), dtype=dtype)
                proto = tensor_pb2.TensorProto.FromString(made.SerializeToString())
            else:
                proto = tensor_util.make_tensor_proto(v if tag == "string" else np.array(v, tag))
            value = summary_pb2.Summary.Value(tag=tag, tensor=proto, metadata=scalars)
            writer.add_event(
                event_pb2.Event(step=step, wall_time=1e9 + step, summary=summary_pb2.Summary(value=[value]))
            )
    writer.close()
    tf_writer = tf.summary.create_file_writer(str(tmp_path / "content"))
    with tf_writer.as_default():
        for tag, values in {**REAL, **SKIPPED}.items():
            for step, v in enumerate(values):
                tf.summary.write(tag, tf.constant(v, tf.as_dtype(tag)), step=step, metadata=scalars)
    tf_writer.close()


def test_tensor_dtypes_under_the_scalars_plugin(tmp_path):
    """Real dtypes (floats, bfloat16, ints of every width, bool as 0/1) are values equal to the
    numpy value; complex, string and quantized values are skipped and counted per tag in
    health()["skipped_values"]; the reload never raises."""
    _write_dtypes(tmp_path)
    reader = LogdirReader(str(tmp_path))
    reader.reload()  # never raises
    assert sorted(reader.runs()) == ["content", "typed"]
    wrong = []
    for run in ("typed", "content"):
        for tag, values in REAL.items():
            expected = [float(np.array(v, tf_numpy_dtype(tag))) for v in values]
            got = reader.series(run, tag)
            if got is None or len(got.step) != 3:
                wrong.append("%s/%s: %s points, not 3" % (run, tag, None if got is None else len(got.step)))
            elif not (np.array_equal(got.step, [0, 1, 2]) and np.array_equal(got.value, expected, equal_nan=True)):
                wrong.append("%s/%s: %s, not %s" % (run, tag, list(got.value), expected))
        extra = sorted(set(reader.tags(run)) - set(REAL))
        if extra:
            wrong.append("%s: tags listed that have no real values: %s" % (run, extra))
        skipped = reader.get(run).health().get("skipped_values")
        if skipped != {tag: 3 for tag in SKIPPED}:
            wrong.append("%s: health()['skipped_values'] is %r" % (run, skipped))
    assert not wrong, "\n".join(wrong)


def tf_numpy_dtype(name):
    import tensorflow as tf

    return tf.as_dtype(name).as_numpy_dtype
