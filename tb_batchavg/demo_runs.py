"""Demo logs: three small real trainings, logged per batch with `tb_batchavg.summary`.

Every run trains the same tanh MLP (20-64-64-1, from the same initial weights) on the same
regression data, generated on the spot (a random "teacher" network plus noise; nothing is
downloaded), with a batch of 32:

- healthy: Adam, linear warm-up over the first 5% of the steps to 3e-3, then cosine decay to
  3e-5. Logged with the Keras callback `BatchAverages` in `model.fit`.
- lr_too_high: SGD with momentum 0.9 whose learning rate is warmed up linearly from 0.01 to 0.15
  over the whole run, past what this model tolerates: the loss and the gradient norm spike
  more and more from a rate of about 0.06 (step 1000 of 3000), grow geometrically from about
  0.12 (step 2300), reach Inf (gradient norm, step ~2500) and NaN (loss, step ~2650). Logged
  with `log_batch` in a custom `tf.function` loop.
- sgd_step_decay: plain SGD, learning rate 0.2, divided by 10 at 50% and again at 75% of the
  steps: the loss drops at each boundary. Logged with `BatchAverages`.

Schedules scale with the number of steps. Seeds are fixed, so the runs are the same every time
on a given machine. 3 x 3000 steps take about 40 s of CPU time in all.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from typing import TextIO

RUNS = ("healthy", "lr_too_high", "sgd_step_decay")
DEFAULT_STEPS = 3000
BATCH_SIZE = 32
MARKER = ".tb_batchavg_demo.json"

_FEATURES = 20
_SAMPLES = 16384
_SEED = 0


class Progress:
    """A one-line progress bar on a stream: redrawn at most 10 times a second on a terminal,
    written once at the end otherwise."""

    def __init__(self, label: str, total: int, stream: TextIO | None = None) -> None:
        self.label = label
        self.total = total
        self.stream = sys.stderr if stream is None else stream
        self.done = 0
        self.start = time.monotonic()
        self._drawn = 0.0
        self._tty = hasattr(self.stream, "isatty") and self.stream.isatty()

    def advance(self, count: int = 1) -> None:
        self.done = min(self.total, self.done + count)
        now = time.monotonic()
        if self._tty and now - self._drawn >= 0.1:
            self._drawn = now
            self._draw("\r")

    def close(self) -> None:
        self._draw("\r" if self._tty else "")
        self.stream.write("\n")
        self.stream.flush()

    def _draw(self, head):
        width = 30
        filled = width * self.done // max(1, self.total)
        self.stream.write(
            "%s%-15s [%s%s] %5d/%d batches %5.1fs"
            % (
                head,
                self.label,
                "#" * filled,
                "." * (width - filled),
                self.done,
                self.total,
                time.monotonic() - self.start,
            )
        )
        self.stream.flush()


def _data():
    """Inputs x ~ N(0, I) and targets y = teacher(x) + noise, float32."""
    import numpy as np

    rng = np.random.default_rng(_SEED)
    x = rng.standard_normal((_SAMPLES, _FEATURES))
    hidden = np.tanh(x @ (rng.standard_normal((_FEATURES, 32)) / np.sqrt(_FEATURES)))
    y = 2.0 * hidden @ (rng.standard_normal((32, 1)) / np.sqrt(32))
    y += 0.1 * rng.standard_normal(y.shape)
    return x.astype(np.float32), y.astype(np.float32)


def _batches(x, y):
    import tensorflow as tf

    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    return dataset.shuffle(len(x), seed=_SEED + 2).repeat().batch(BATCH_SIZE)


def _model():
    import keras

    keras.utils.set_random_seed(_SEED + 1)
    return keras.Sequential(
        [
            keras.Input((_FEATURES,)),
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(64, activation="tanh"),
            keras.layers.Dense(1),
        ]
    )


def _optimizer(run, steps):
    import keras

    schedules = keras.optimizers.schedules
    if run == "healthy":
        warmup = max(1, steps // 20)
        return keras.optimizers.Adam(
            schedules.CosineDecay(0.0, max(1, steps - warmup), alpha=0.01, warmup_target=3e-3, warmup_steps=warmup)
        )
    if run == "lr_too_high":
        # PolynomialDecay with power 1 from 0.01 up to 0.15: a linear warm-up that never ends.
        return keras.optimizers.SGD(
            schedules.PolynomialDecay(0.01, steps, end_learning_rate=0.15, power=1.0), momentum=0.9
        )
    if run == "sgd_step_decay":
        return keras.optimizers.SGD(schedules.PiecewiseConstantDecay([steps // 2, 3 * steps // 4], [0.2, 0.02, 0.002]))
    raise ValueError("unknown demo run %r" % run)


def _train_with_fit(run_dir, model, optimizer, batches, steps, progress):
    """model.fit with the one added line: the BatchAverages callback."""
    import keras

    from tb_batchavg.summary import BatchAverages

    class Advance(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            progress.advance()

    model.compile(optimizer=optimizer, loss="mse")
    batch_averages = BatchAverages(run_dir)
    model.fit(batches, epochs=1, steps_per_epoch=steps, shuffle=False, verbose=0, callbacks=[batch_averages, Advance()])
    batch_averages.writer.close()


def _train_custom_loop(run_dir, model, optimizer, batches, steps, progress):
    """A custom tf.function training step logging with log_batch."""
    import tensorflow as tf

    from tb_batchavg.summary import log_batch

    writer = tf.summary.create_file_writer(run_dir)

    @tf.function
    def train_step(step, x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        log_batch(step, loss, gradients, optimizer, writer=writer)

    for step, (x, y) in enumerate(batches.take(steps)):
        train_step(tf.constant(step, tf.int64), x, y)
        progress.advance()
    writer.close()


_TRAINERS = {
    "healthy": _train_with_fit,
    "lr_too_high": _train_custom_loop,
    "sgd_step_decay": _train_with_fit,
}


def logs_complete(logdir: str, steps: int) -> bool:
    """Whether `logdir` holds finished demo logs of `steps` batches per run."""
    try:
        with open(os.path.join(logdir, MARKER)) as f:
            marker = json.load(f)
    except (OSError, ValueError):
        return False
    return marker.get("steps") == steps and marker.get("runs") == list(RUNS)


def _clear_run(run_dir):
    """Removes an unfinished demo run; refuses if the directory holds anything but event files."""
    if not os.path.isdir(run_dir):
        return
    names = os.listdir(run_dir)
    foreign = [n for n in names if not n.startswith("events.out.tfevents.")]
    if foreign:
        raise RuntimeError(
            "refusing to overwrite %s: it holds files the demo did not write (%s)"
            % (run_dir, ", ".join(sorted(foreign)[:5]))
        )
    shutil.rmtree(run_dir)


def write_logs(logdir: str, steps: int = DEFAULT_STEPS, stream: TextIO | None = None) -> None:
    """Trains the demo runs into `logdir`/<run> with a progress bar on `stream` (stderr)."""
    if steps < 1:
        raise ValueError("steps must be >= 1")
    import tensorflow as tf

    x, y = _data()
    os.makedirs(logdir, exist_ok=True)
    marker = os.path.join(logdir, MARKER)
    if os.path.exists(marker):
        os.remove(marker)
    for run in RUNS:
        run_dir = os.path.join(logdir, run)
        _clear_run(run_dir)
        progress = Progress(run, steps, stream)
        with tf.device("/CPU:0"):
            _TRAINERS[run](run_dir, _model(), _optimizer(run, steps), _batches(x, y), steps, progress)
        progress.close()
    with open(marker, "w") as f:
        json.dump({"steps": steps, "runs": list(RUNS)}, f)


def ensure_logs(logdir: str, steps: int = DEFAULT_STEPS, stream: TextIO | None = None) -> bool:
    """Writes the demo logs unless finished ones of `steps` batches are there; returns whether
    it trained."""
    if logs_complete(logdir, steps):
        return False
    write_logs(logdir, steps, stream)
    return True
