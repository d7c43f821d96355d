"""Event files written by the real writers themselves (never framed by this project).

Each writer is `write_<name>(logdir, n, seed=0)`: it writes a run of `n` steps of per-batch
values (see `values`: a decaying loss, a gradient norm, a warm-up learning rate, with a spike, a
NaN and infinities) into the directory `logdir` with that writer, and returns `logdir`. Most
writers make one run, `logdir` itself (TensorBoard names it "."); Keras's callback makes the runs
`train` and `validation`. `WRITERS` maps each name to its function.

`cached(name, n, seed=0)` writes a run once, in a subprocess, under `cache_dir()`
($TB_BATCHAVG_CORPUS, else ~/.cache/tb-batchavg/corpus), in `<name>-n<n>-s<seed>-v<VERSION>`,
and returns that logdir (e.g. for the benchmark's 1M-step runs).
Run as a script: `python tests/corpus.py NAME LOGDIR N [SEED]` writes one run.
"""

import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

VERSION = 1  # bump when a writer's output changes: the cache keys include it
TAGS = ("train/loss", "train/grad_norm", "train/learning_rate")


def values(n, seed=0):
    """{tag: float32 array of n values}: a decaying, noisy loss with a 50x spike at n//3, NaN at
    n//2 and +Inf at 2n//3; a gradient norm following it with +Inf at n//2 and -Inf at n//2+1; a
    learning rate with a linear warm-up over n//20 steps then a cosine decay."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    trend = 2.0 * np.exp(-3.0 * t / max(n, 1)) + 0.2
    loss = trend * np.exp(0.15 * rng.standard_normal(n))
    grad_norm = 0.5 * trend + 0.3 * (loss - trend) + 0.05 * np.abs(rng.standard_normal(n))
    warm = max(1, n // 20)
    lr = 1e-3 * np.where(t < warm, (t + 1) / warm, 0.5 * (1 + np.cos(np.pi * (t - warm) / max(1, n - warm))))
    if n:
        loss[n // 3] *= 50
        grad_norm[n // 3] *= 50
        loss[n // 2] = np.nan
        loss[2 * n // 3] = np.inf
        grad_norm[n // 2] = np.inf
        grad_norm[min(n - 1, n // 2 + 1)] = -np.inf
    return {tag: np.asarray(v, np.float32) for tag, v in zip(TAGS, (loss, grad_norm, lr))}


def _tf():
    import tensorflow as tf

    return tf


def _matrix(n, seed):
    """values(n, seed) as an n x 3 float32 array, columns in TAGS order."""
    cols = values(n, seed)
    return np.stack([cols[t] for t in TAGS], axis=1) if n else np.zeros((0, 3), np.float32)


# --- TensorFlow 2 -------------------------------------------------------------------------------


def write_tf2_eager(logdir, n, seed=0):
    """`tf.summary.scalar` called eagerly, one event per value. TF2 layout: a DT_FLOAT tensor of
    shape [] with the value in `tensor_content`, and the scalars plugin metadata repeated in every
    record. Tags as given."""
    tf = _tf()
    data = _matrix(n, seed)
    writer = tf.summary.create_file_writer(logdir)
    with writer.as_default():
        for i in range(n):
            for j, tag in enumerate(TAGS):
                tf.summary.scalar(tag, data[i, j], step=i)
    writer.close()
    return logdir


def write_tf2_function(logdir, n, seed=0):
    """`tf.summary.scalar` inside a `tf.function` looping over `tf.range`, as training loops do:
    the loop's name scope prefixes the tags ("while/train/loss"). Same TF2 layout as the eager
    writer; about a minute for 1M steps x 3 tags."""
    tf = _tf()
    data = tf.constant(_matrix(n, seed))
    writer = tf.summary.create_file_writer(logdir)

    @tf.function
    def loop():
        with writer.as_default():
            for i in tf.range(n):
                for j, tag in enumerate(TAGS):
                    tf.summary.scalar(tag, data[i, j], step=tf.cast(i, tf.int64))

    loop()
    writer.close()
    return logdir


def _fit_data(n, seed, batch_size=8):
    """x, y of n batches for a linear model y = x.w + noise; the targets of batch n//3 are 20x
    (a loss spike) and those of the last batch NaN (a NaN loss, NaN weights after it)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n * batch_size, 4)).astype(np.float32)
    y = x @ np.array([1.0, -2.0, 0.5, 3.0], np.float32) + 0.1 * rng.standard_normal(n * batch_size)
    y = y.astype(np.float32)[:, None]
    y[(n // 3) * batch_size : (n // 3 + 1) * batch_size] *= 20
    y[-batch_size:] = np.nan
    return x, y


def _tiny_model(seed, n):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.CosineDecay(1e-2, decay_steps=max(1, n), warmup_target=None)
    model.compile(optimizer=keras.optimizers.Adam(schedule), loss="mse")
    return model


def write_keras(logdir, n, seed=0):
    """Keras 3 `TensorBoard(update_freq=1)` on `model.fit` of n batches over 2 epochs, with
    validation: train/ gets batch_loss (the running mean over the epoch) at steps 1..n, and
    epoch_loss, epoch_learning_rate at steps 0, 1; validation/ gets epoch_loss and
    evaluation_loss_vs_iterations. TF2 layout (scalars metadata in every record), plus a graph."""
    import keras

    x, y = _fit_data(n, seed)
    model = _tiny_model(seed, n)
    callback = keras.callbacks.TensorBoard(logdir, update_freq=1)
    model.fit(
        x,
        y,
        batch_size=8,
        epochs=2 if n >= 2 else 1,
        steps_per_epoch=max(1, n // 2),
        validation_data=(x[:64], y[:64]),
        shuffle=False,
        verbose=0,
        callbacks=[callback],
    )
    return logdir


def write_batchavg_callback(logdir, n, seed=0):
    """This package's `BatchAverages` Keras callback on `model.fit` of n batches: train/loss,
    train/grad_norm, train/learning_rate at steps 0..n-1, written by `tf.summary.write` in a
    tf.function (TF2 layout, tags as given)."""
    from tb_batchavg.summary import BatchAverages

    x, y = _fit_data(n, seed)
    model = _tiny_model(seed, n)
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[BatchAverages(logdir)])
    return logdir


def write_batchavg_log_batch(logdir, n, seed=0):
    """This package's `log_batch` in a tf.function over `tf.range`: the loss of `values`, the
    gradient norm of a one-element gradient holding `values`' grad_norm (its absolute value), and
    the learning rate of a cosine schedule at each step. TF2 layout, tags as given."""
    import keras

    from tb_batchavg.summary import log_batch

    tf = _tf()
    data = tf.constant(_matrix(n, seed))
    writer = tf.summary.create_file_writer(logdir)
    optimizer = keras.optimizers.SGD(keras.optimizers.schedules.CosineDecay(1e-3, max(1, n)))

    @tf.function
    def loop():
        for i in tf.range(n):
            log_batch(tf.cast(i, tf.int64), data[i, 0], [data[i, 1:2]], optimizer, writer=writer)

    loop()
    writer.close()
    return logdir


# --- TensorFlow 1 -------------------------------------------------------------------------------


def write_tf1_simple(logdir, n, seed=0):
    """TF1 graph: `tf.compat.v1.summary.scalar` ops merged and run in a Session each step, and
    `FileWriter(logdir, graph).add_summary`: one event per step holding the 3 tags as
    `simple_value`s (no metadata), after a graph_def event."""
    tf = _tf()
    data = _matrix(n, seed)
    with tf.Graph().as_default() as graph:
        batch = tf.compat.v1.placeholder(tf.float32, [len(TAGS)])
        merged = tf.compat.v1.summary.merge([tf.compat.v1.summary.scalar(tag, batch[j]) for j, tag in enumerate(TAGS)])
        writer = tf.compat.v1.summary.FileWriter(logdir, graph)
        with tf.compat.v1.Session() as session:
            for i in range(n):
                writer.add_summary(session.run(merged, {batch: data[i]}), i)
        writer.close()
    return logdir


def write_tf1_scalar_pb(logdir, n, seed=0, tags=TAGS):
    """`tensorboard.summary.v1.scalar_pb(tag, value)` summaries given to TF1's
    `tf.compat.v1.summary.FileWriter.add_summary`, one event per value: a DT_FLOAT tensor in
    `float_val` under the tag "<tag>/scalar_summary". FileWriter keeps the scalars metadata only
    on each tag's first value and strips it from every later one. `tags`: the tags to write (the
    values of TAGS in turn); long tags make big records, so few points span many read chunks."""
    from tensorboard.summary.v1 import scalar_pb

    tf = _tf()
    data = _matrix(n, seed)
    with tf.Graph().as_default():  # FileWriter refuses eager mode
        writer = tf.compat.v1.summary.FileWriter(logdir)
        for i in range(n):
            for j, tag in enumerate(tags):
                writer.add_summary(scalar_pb(tag, data[i, j % len(TAGS)]), i)
        writer.close()
    return logdir


# --- tensorboardX and PyTorch -------------------------------------------------------------------


def write_tbx(logdir, n, seed=0):
    """tensorboardX `SummaryWriter.add_scalar`: one event per value, a `simple_value` and no
    metadata. (tensorboardX 2.6 has no new_style; PyTorch's writer has it: `torch_new_style`.)"""
    from tensorboardX import SummaryWriter

    data = _matrix(n, seed)
    with SummaryWriter(logdir) as writer:
        for i in range(n):
            for j, tag in enumerate(TAGS):
                writer.add_scalar(tag, data[i, j], i)
    return logdir


def write_tbx_display_name(logdir, n, seed=0):
    """tensorboardX `add_scalar(..., display_name=, summary_description=)`: a `simple_value`
    with metadata (display name and description, no plugin_data) in every record."""
    from tensorboardX import SummaryWriter

    data = _matrix(n, seed)
    with SummaryWriter(logdir) as writer:
        for i in range(n):
            for j, tag in enumerate(TAGS):
                writer.add_scalar(tag, data[i, j], i, display_name=tag.split("/")[-1], summary_description="per batch")
    return logdir


def has_torch():
    try:
        import torch.utils.tensorboard  # noqa: F401
    except ImportError:
        return False
    return True


def _write_torch(logdir, n, seed, **kwargs):
    from torch.utils.tensorboard import SummaryWriter

    data = _matrix(n, seed)
    with SummaryWriter(logdir) as writer:
        for i in range(n):
            for j, tag in enumerate(TAGS):
                writer.add_scalar(tag, float(data[i, j]), i, **kwargs)
    return logdir


def write_torch(logdir, n, seed=0):
    """PyTorch `torch.utils.tensorboard.SummaryWriter.add_scalar`: one event per value, a
    `simple_value` and no metadata."""
    return _write_torch(logdir, n, seed)


def write_torch_new_style(logdir, n, seed=0):
    """PyTorch `add_scalar(..., new_style=True)`: a DT_FLOAT tensor with no shape field and the
    value in `float_val`, scalars plugin metadata in every record."""
    return _write_torch(logdir, n, seed, new_style=True)


def write_torch_new_style_double(logdir, n, seed=0):
    """PyTorch `add_scalar(..., new_style=True, double_precision=True)`: as new_style, a
    DT_DOUBLE tensor with the value in `double_val`."""
    return _write_torch(logdir, n, seed, new_style=True, double_precision=True)


# --- Scalars among histograms, images and text --------------------------------------------------


def write_mixed_tf2(logdir, n, seed=0, every=10):
    """TF2 in a tf.function over `tf.range` (tags under "while/"): the 3 scalars every step, and
    every `every` steps a histogram of 256 values (a [30, 3] DT_DOUBLE tensor), a 32x32 RGB noise
    image (PNG, DT_STRING) and a text (DT_STRING, one element: under the "text" plugin, not
    "scalars"). The images and histograms make most of the bytes."""
    tf = _tf()
    data = tf.constant(_matrix(n, seed))
    writer = tf.summary.create_file_writer(logdir)
    tf.random.set_seed(seed)

    @tf.function
    def loop():
        with writer.as_default():
            for i in tf.range(n):
                step = tf.cast(i, tf.int64)
                for j, tag in enumerate(TAGS):
                    tf.summary.scalar(tag, data[i, j], step=step)
                if i % every == 0:
                    tf.summary.histogram("weights", tf.random.normal([256]), step=step)
                    image = tf.random.uniform([1, 32, 32, 3], maxval=256, dtype=tf.int32)
                    tf.summary.image("samples", tf.cast(image, tf.uint8), step=step)
                    tf.summary.text("notes", tf.strings.format("step {}", i), step=step)

    loop()
    writer.close()
    return logdir


def write_mixed_tbx(logdir, n, seed=0, every=10):
    """tensorboardX: `add_scalar` for the 3 scalars every step (simple_value), and every `every`
    steps `add_histogram` (a HistogramProto `histo`), `add_image` (a 32x32 RGB PNG `image`) and
    `add_text` (a DT_STRING tensor under the "text" plugin)."""
    from tensorboardX import SummaryWriter

    data = _matrix(n, seed)
    rng = np.random.default_rng(seed)
    with SummaryWriter(logdir) as writer:
        for i in range(n):
            for j, tag in enumerate(TAGS):
                writer.add_scalar(tag, data[i, j], i)
            if i % every == 0:
                writer.add_histogram("weights", rng.standard_normal(256), i)
                writer.add_image("samples", rng.integers(0, 256, (3, 32, 32), dtype=np.uint8), i)
                writer.add_text("notes", "step %d" % i, i)
    return logdir


WRITERS = {
    "tf2_eager": write_tf2_eager,
    "tf2_function": write_tf2_function,
    "keras": write_keras,
    "batchavg_callback": write_batchavg_callback,
    "batchavg_log_batch": write_batchavg_log_batch,
    "tf1_simple": write_tf1_simple,
    "tf1_scalar_pb": write_tf1_scalar_pb,
    "tbx": write_tbx,
    "tbx_display_name": write_tbx_display_name,
    "torch": write_torch,
    "torch_new_style": write_torch_new_style,
    "torch_new_style_double": write_torch_new_style_double,
    "mixed_tf2": write_mixed_tf2,
    "mixed_tbx": write_mixed_tbx,
}
TORCH_WRITERS = ("torch", "torch_new_style", "torch_new_style_double")


def available(name):
    """Whether the writer's library imports here (only PyTorch's are optional)."""
    return name not in TORCH_WRITERS or has_torch()


def cache_dir():
    return os.environ.get("TB_BATCHAVG_CORPUS") or os.path.expanduser("~/.cache/tb-batchavg/corpus")


def cached(name, n, seed=0, root=None):
    """The logdir of writer `name`'s run of n steps, written once (in a subprocess, so TensorFlow's
    graph mode, PyTorch and their memory stay out of the caller) under `root` or `cache_dir()`."""
    if name not in WRITERS:
        raise ValueError("unknown writer %r; one of %s" % (name, ", ".join(WRITERS)))
    root = root or cache_dir()
    path = os.path.join(root, "%s-n%d-s%d-v%d" % (name, n, seed, VERSION))
    if os.path.isdir(path):
        return path
    os.makedirs(root, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".writing-", dir=root)
    try:
        subprocess.run([sys.executable, os.path.abspath(__file__), name, tmp, str(n), str(seed)], check=True)
        os.rename(tmp, path)
    except OSError:
        if not os.path.isdir(path):  # not another process that wrote it first
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return path


def main(argv):
    if len(argv) not in (3, 4) or argv[0] not in WRITERS:
        sys.exit("usage: corpus.py {%s} LOGDIR N [SEED]" % ",".join(WRITERS))
    WRITERS[argv[0]](argv[1], int(argv[2]), int(argv[3]) if len(argv) > 3 else 0)


if __name__ == "__main__":
    main(sys.argv[1:])
