"""Fast writing of benchmark logdirs: real TFRecord event files, framed and checksummed here.

TensorBoard's Python writer needs minutes for a 1,000,000-step run. Here each Event is still
serialised by protobuf (`event_pb2`), but framing and CRCs are done for many records at once, with
the reader's own vectorised crc32c (`tb_batchavg.ingest.records`). The files are ordinary event files:
TensorBoard's loaders, its Rust data server and tbparse read them, checking the CRCs (the
benchmark checks every loader's point count).

Layouts: `step` writes one Event per step carrying all tags; `tag` one Event per tag per step (as
tf.summary, and so Keras' TensorBoard callback, and PyTorch's SummaryWriter write scalars).

Files are kept in a cache directory keyed by (steps, layout, seed) and reused between runs; a
logdir is a directory of hard links (or copies) to cached files, so making one costs nothing.
"""

import os
import shutil

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2

from tb_batchavg.ingest import records
from tests.helpers import training_like

WALL_START = 1_700_000_000.0
SECONDS_PER_STEP = 0.05
TAGS = ("train/loss", "train/grad_norm", "train/learning_rate")
_FORMAT_VERSION = 1  # bump when the generated content changes, to invalidate caches


def masked_crc32c(rows):
    """TFRecord's masked crc32c of each row of a 2-D uint8 array."""
    count, width = rows.shape
    starts = np.arange(count, dtype=np.int64) * width
    return records.mask(
        records.crc32c(np.ascontiguousarray(rows).ravel(), starts, np.full(count, width, dtype=np.int64))
    )


def frame(payloads):
    """TFRecord framing of a list of serialised records: one bytes object, CRCs vectorised."""
    lengths = np.fromiter((len(p) for p in payloads), dtype=np.int64, count=len(payloads))
    header = lengths.astype("<u8").view(np.uint8).reshape(-1, 8)
    header_crc = masked_crc32c(header)
    data_crc = np.zeros(len(payloads), dtype=np.uint32)
    for length in np.unique(lengths):
        sel = np.flatnonzero(lengths == length)
        rows = np.frombuffer(b"".join([payloads[i] for i in sel.tolist()]), dtype=np.uint8)
        data_crc[sel] = masked_crc32c(rows.reshape(len(sel), int(length)))
    header_bytes = np.concatenate((header, header_crc.astype("<u4").view(np.uint8).reshape(-1, 4)), axis=1)
    footer_bytes = data_crc.astype("<u4").view(np.uint8).reshape(-1, 4)
    heads = [h.tobytes() for h in header_bytes]
    feet = [f.tobytes() for f in footer_bytes]
    return b"".join(b for triple in zip(heads, payloads, feet) for b in triple)


def events(first_step, count, columns, layout):
    """Serialised Events for steps first_step..first_step+count-1 (`columns`: tag -> values)."""
    items = list(columns.items())
    Event, Summary, Value = event_pb2.Event, summary_pb2.Summary, summary_pb2.Summary.Value
    out = []
    for i in range(count):
        step = first_step + i
        wall = WALL_START + step * SECONDS_PER_STEP
        if layout == "step":
            values = [Value(tag=t, simple_value=float(v[i])) for t, v in items]
            out.append(Event(step=step, wall_time=wall, summary=Summary(value=values)).SerializeToString())
        else:
            for t, v in items:
                value = Value(tag=t, simple_value=float(v[i]))
                out.append(Event(step=step, wall_time=wall, summary=Summary(value=[value])).SerializeToString())
    return out


def file_version_record():
    return event_pb2.Event(wall_time=WALL_START, file_version="brain.Event:2").SerializeToString()


def series(steps, seed):
    """Training-like loss, gradient norm and learning rate (float32 values, as loggers write)."""
    return training_like(steps, seed=seed)


def write_event_file(path, steps, layout, seed, chunk=100_000):
    """Writes a `steps`-step run to `path` (atomically), in chunks to bound memory."""
    columns = series(steps, seed)
    first = file_version_record()
    tmp = path + ".partial"
    with open(tmp, "wb") as f:
        f.write(frame([first]))
        for a in range(0, steps, chunk):
            b = min(steps, a + chunk)
            f.write(frame(events(a, b - a, {t: v[a:b] for t, v in columns.items()}, layout)))
    os.replace(tmp, path)


def append_steps(path, first_step, count, layout, seed=12345):
    """Appends `count` more steps starting at `first_step` to an event file."""
    columns = series(count, seed)
    with open(path, "ab") as f:
        f.write(frame(events(first_step, count, columns, layout)))


def cached_event_file(cache_dir, steps, layout, seed=0):
    """The path of a cached event file with `steps` steps (written if missing)."""
    name = "events.out.tfevents.%d.bench-v%d-%s-%d-%d" % (int(WALL_START), _FORMAT_VERSION, layout, steps, seed)
    folder = os.path.join(cache_dir, "files")
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    if not os.path.exists(path):
        write_event_file(path, steps, layout, seed)
    return path


def link_run(logdir, run, source):
    """Makes `logdir/run/` hold `source` (hard link when possible, else a copy)."""
    directory = os.path.join(logdir, run)
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, os.path.basename(source))
    if not os.path.exists(target):
        try:
            os.link(source, target)
        except OSError:
            shutil.copyfile(source, target)
    return directory


def copy_run(logdir, run, source):
    """Makes `logdir/run/` hold a private copy of `source` (for files the benchmark appends to)."""
    directory = os.path.join(logdir, run)
    os.makedirs(directory, exist_ok=True)
    target = os.path.join(directory, os.path.basename(source))
    shutil.copyfile(source, target)
    return target


def point_count(steps):
    return steps * len(TAGS)
