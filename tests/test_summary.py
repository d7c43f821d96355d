"""The writing side logs the true per-batch values.

References are computed independently: the batch loss from a replay of training (same initial
weights, the loss of batch b under the weights before step b), the gradient norm with
`tf.linalg.global_norm` and numpy over that batch's gradients, the learning rate with the
schedule at that step (or its formula in numpy). Event files are read back with TensorFlow's own
`summary_iterator`, except where the plugin's reader and role detection are the point.
"""

import contextlib
import glob
import os
import subprocess
import sys

import numpy as np
import pytest

from tb_batchavg.ingest.reader import LogdirReader
from tb_batchavg.metadata import detect_roles


@pytest.fixture(scope="module")
def tf():
    import tensorflow

    return tensorflow


@pytest.fixture(scope="module")
def keras(tf):
    import keras

    return keras


def read_scalars(tf, logdir):
    """{tag: (steps, values)} of every scalar in the event files directly in `logdir`."""
    points = {}
    for path in sorted(glob.glob(os.path.join(logdir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                points.setdefault(value.tag, []).append((event.step, float(tf.make_ndarray(value.tensor))))
    return {tag: (np.array([s for s, _ in p]), np.array([v for _, v in p])) for tag, p in points.items()}


def numpy_norms(gradients):
    flat = np.concatenate([np.ravel(g) for g in gradients]).astype(np.float64)
    return {"l2": np.sqrt(np.sum(flat**2)), "l1": np.sum(np.abs(flat)), "linf": np.max(np.abs(flat))}


def test_import_is_lazy_and_names_the_extra_when_tensorflow_is_missing():
    code = (
        "import sys\n"
        "import tb_batchavg.summary as s\n"
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules\n"
        "sys.modules['tensorflow'] = None\n"  # what `import tensorflow` sees when it is not installed
        "for call in (lambda: s.log_batch(0, 1.0), lambda: s.BatchAverages):\n"
        "    try:\n"
        "        call()\n"
        "    except ImportError as e:\n"
        "        assert \"pip install 'tb-batchavg[tf]'\" in str(e), e\n"
        "    else:\n"
        "        raise AssertionError('no ImportError')\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# Custom training loops ---------------------------------------------------------------------


def _mlp_forward(weights, x):
    """The model below, in numpy: Dense(4, tanh) then Dense(1)."""
    w1, b1, w2, b2 = weights
    return np.tanh(x @ w1 + b1) @ w2 + b2


@pytest.mark.tf
@pytest.mark.parametrize("mode", ["eager", "function"])
@pytest.mark.parametrize("default_writer", [False, True])
def test_log_batch_logs_true_loss_norms_and_scheduled_rate(tf, keras, tmp_path, mode, default_writer):
    from tb_batchavg.summary import log_batch

    keras.utils.set_random_seed(3)
    model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    optimizer = keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.1, 3, 0.5))
    writer = tf.summary.create_file_writer(str(tmp_path))
    rng = np.random.default_rng(0)
    batches = [
        (rng.standard_normal((8, 5)).astype("float32"), rng.standard_normal((8, 1)).astype("float32")) for _ in range(5)
    ]

    def train_step(step, x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x) - y))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        # After apply_gradients the optimizer's own step count is step + 1: the schedule must
        # still be read at `step`.
        given = None if default_writer else writer
        log_batch(step, loss, gradients, optimizer, writer=given)
        log_batch(step, None, gradients, norm="l1", writer=given)
        log_batch(step, None, gradients, norm="linf", writer=given)
        return gradients

    if mode == "function":
        train_step = tf.function(train_step)
    expected = {"train/loss": [], "train/learning_rate": [], "l2": [], "l1": [], "linf": [], "global_norm": []}
    for step, (x, y) in enumerate(batches):
        expected["train/loss"].append(np.mean((_mlp_forward(model.get_weights(), x) - y) ** 2))
        with writer.as_default() if default_writer else contextlib.nullcontext():
            gradients = train_step(tf.constant(step, tf.int64), x, y)
        for norm, value in numpy_norms([g.numpy() for g in gradients]).items():
            expected[norm].append(value)
        expected["global_norm"].append(float(tf.linalg.global_norm(gradients)))
        expected["train/learning_rate"].append(0.1 * 0.5 ** (step / 3))
    writer.flush()

    got = read_scalars(tf, str(tmp_path))
    assert sorted(got) == [
        "train/grad_norm",
        "train/grad_norm/l1",
        "train/grad_norm/linf",
        "train/learning_rate",
        "train/loss",
    ]
    for steps, _ in got.values():
        np.testing.assert_array_equal(steps, np.arange(len(batches)))
    for tag in ("train/loss", "train/learning_rate"):
        np.testing.assert_allclose(got[tag][1], expected[tag], rtol=1e-5)
    np.testing.assert_allclose(got["train/grad_norm"][1], expected["global_norm"], rtol=1e-6)
    np.testing.assert_allclose(got["train/grad_norm"][1], expected["l2"], rtol=1e-5)
    np.testing.assert_allclose(got["train/grad_norm/l1"][1], expected["l1"], rtol=1e-5)
    np.testing.assert_allclose(got["train/grad_norm/linf"][1], expected["linf"], rtol=1e-6)
    assert detect_roles(got) == {
        "loss": "train/loss",
        "grad_norm": "train/grad_norm",
        "learning_rate": "train/learning_rate",
    }


@pytest.mark.tf
def test_log_batch_inside_a_graph_loop_writes_tags_without_scope_prefixes(tf, tmp_path):
    from tb_batchavg.summary import log_batch

    writer = tf.summary.create_file_writer(str(tmp_path))

    @tf.function
    def loop():
        for step in tf.range(4, dtype=tf.int64):
            with tf.name_scope("inner"):
                log_batch(
                    step,
                    tf.cast(step, tf.float32) / 2,
                    [tf.fill([3], tf.cast(step, tf.float32))],
                    writer=writer,
                    prefix="",
                )

    loop()
    writer.flush()
    got = read_scalars(tf, str(tmp_path))
    assert sorted(got) == ["grad_norm", "loss"]
    np.testing.assert_allclose(got["loss"][1], np.arange(4) / 2)
    np.testing.assert_allclose(got["grad_norm"][1], np.sqrt(3) * np.arange(4), rtol=1e-6)


@pytest.mark.tf
def test_gradient_norm_sums_repeated_rows_of_sparse_gradients(tf, keras):
    from tb_batchavg.summary import gradient_norm

    embedding = keras.layers.Embedding(6, 3)
    ids = tf.constant([1, 4, 1, 1, 5])  # row 1 three times
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(embedding(ids) * tf.constant([1.0, -2.0, 0.5]))
    (gradient,) = tape.gradient(loss, embedding.trainable_variables)
    assert isinstance(gradient, tf.IndexedSlices)
    dense = np.zeros((6, 3))
    np.add.at(dense, ids.numpy(), np.tile([1.0, -2.0, 0.5], (5, 1)))
    for norm, value in numpy_norms([dense]).items():
        np.testing.assert_allclose(float(gradient_norm([gradient, None], norm)), value, rtol=1e-6)
    with pytest.raises(ValueError):
        gradient_norm([None])
    with pytest.raises(ValueError):
        gradient_norm([dense], "l3")


# Keras model.fit ----------------------------------------------------------------------------


def _replay(keras, tf, model, initial_weights, make_optimizer, x, y, batch_size, steps):
    """Trains a clone from the same weights on the same batches in order; returns per step the
    loss under the weights before the step and the norms of that batch's gradients."""
    clone = keras.models.clone_model(model)
    clone.set_weights(initial_weights)
    optimizer = make_optimizer()
    per_epoch = len(x) // batch_size
    losses, norms = [], {"l2": [], "l1": [], "linf": [], "global_norm": []}
    for step in range(steps):
        b = step % per_epoch
        xb, yb = x[b * batch_size : (b + 1) * batch_size], y[b * batch_size : (b + 1) * batch_size]
        losses.append(np.mean((clone(xb).numpy() - yb) ** 2))
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(clone(xb, training=True) - yb))
        gradients = tape.gradient(loss, clone.trainable_variables)
        for norm, value in numpy_norms([g.numpy() for g in gradients]).items():
            norms[norm].append(value)
        norms["global_norm"].append(float(tf.linalg.global_norm(gradients)))
        optimizer.apply_gradients(zip(gradients, clone.trainable_variables))
    return np.array(losses), {k: np.array(v) for k, v in norms.items()}


class _BatchLogs:
    """Keeps the `loss` Keras hands to callbacks after each batch."""

    def __init__(self, keras):
        outer = self
        self.losses = []

        class Callback(keras.callbacks.Callback):
            def on_train_batch_end(self, batch, logs=None):
                outer.losses.append(float(logs["loss"]))

        self.callback = Callback()


KERAS_CASES = {
    # Sequential, Adam with warm-up then cosine decay, one batch per execution.
    # With validation data: the test step's loss must not be taken for a batch's.
    "sequential": dict(functional=False, steps_per_execution=1, jit_compile=False, loss_scale=False, validation=True),
    # Functional, XLA, 3 batches per execution (5 per epoch: the last execution is partial),
    # loss scaling (the gradients the optimizer receives are scaled).
    "functional": dict(functional=True, steps_per_execution=3, jit_compile=True, loss_scale=True, validation=False),
}


@pytest.mark.tf
@pytest.mark.parametrize("case", sorted(KERAS_CASES))
def test_keras_callback_logs_true_batch_loss_gradient_norm_and_rate(tf, keras, tmp_path, case):
    from tb_batchavg.summary import BatchAverages

    options = KERAS_CASES[case]
    keras.utils.set_random_seed(7)
    if options["functional"]:
        inputs = keras.Input((5,))
        hidden = keras.layers.Dense(8, activation="tanh")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(1)(hidden))
        schedule = keras.optimizers.schedules.PiecewiseConstantDecay([3, 6], [0.05, 0.02, 0.01])
        make_optimizer = lambda: keras.optimizers.SGD(schedule, momentum=0.5)  # noqa: E731
    else:
        model = keras.Sequential([keras.Input((5,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
        schedule = keras.optimizers.schedules.CosineDecay(0.0, 7, alpha=0.1, warmup_target=0.03, warmup_steps=3)
        make_optimizer = lambda: keras.optimizers.Adam(schedule)  # noqa: E731
    optimizer = make_optimizer()
    if options["loss_scale"]:
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer, initial_scale=1024.0)
    model.compile(
        optimizer, "mse", steps_per_execution=options["steps_per_execution"], jit_compile=options["jit_compile"]
    )
    rng = np.random.default_rng(1)
    x = rng.standard_normal((40, 5)).astype("float32")
    y = (x[:, :1] * 2 + 0.3 * rng.standard_normal((40, 1))).astype("float32")
    initial_weights = model.get_weights()
    batch_logs = _BatchLogs(keras)
    epochs, batch_size = 2, 8
    steps = epochs * len(x) // batch_size

    model.fit(
        x,
        y,
        batch_size=batch_size,
        epochs=epochs,
        shuffle=False,
        verbose=0,
        validation_data=(x[:16], y[:16]) if options["validation"] else None,
        callbacks=[BatchAverages(str(tmp_path)), batch_logs.callback],
    )

    got = read_scalars(tf, str(tmp_path))
    assert sorted(got) == ["train/grad_norm", "train/learning_rate", "train/loss"]
    for logged_steps, _ in got.values():
        np.testing.assert_array_equal(logged_steps, np.arange(steps))
    losses, norms = _replay(keras, tf, model, initial_weights, make_optimizer, x, y, batch_size, steps)
    np.testing.assert_allclose(got["train/loss"][1], losses, rtol=1e-4)
    np.testing.assert_allclose(got["train/grad_norm"][1], norms["global_norm"], rtol=1e-4)
    np.testing.assert_allclose(got["train/grad_norm"][1], norms["l2"], rtol=1e-4)
    np.testing.assert_allclose(got["train/learning_rate"][1], [float(schedule(s)) for s in range(steps)], rtol=1e-6)
    if options["steps_per_execution"] == 1:
        # The pitfall: Keras's batch logs hold the running mean of the epoch, not the batch loss.
        per_epoch = len(x) // batch_size
        running = [np.mean(losses[s - s % per_epoch : s + 1]) for s in range(steps)]
        np.testing.assert_allclose(batch_logs.losses, running, rtol=1e-4)
        assert np.max(np.abs(np.array(batch_logs.losses) - losses)) > 0.05
    # The hooks are gone after fit.
    assert "compute_loss" not in vars(model) and "apply" not in vars(model.optimizer)


@pytest.mark.tf
def test_keras_callback_norm_option_continues_across_fits_and_leaves_no_hook(tf, keras, tmp_path):
    from tb_batchavg.summary import BatchAverages

    keras.utils.set_random_seed(11)
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(0.1), "mse")
    rng = np.random.default_rng(2)
    x = rng.standard_normal((24, 3)).astype("float32")
    y = rng.standard_normal((24, 1)).astype("float32")
    initial_weights = model.get_weights()
    callback = BatchAverages(str(tmp_path), norm="linf", prefix="")
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[callback])
    model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)  # without: logs nothing

    got = read_scalars(tf, str(tmp_path))
    assert detect_roles(got) == {"loss": "loss", "grad_norm": "grad_norm/linf", "learning_rate": "learning_rate"}
    np.testing.assert_array_equal(got["grad_norm/linf"][0], np.arange(6))
    losses, norms = _replay(keras, tf, model, initial_weights, lambda: keras.optimizers.SGD(0.1), x, y, 8, 6)
    np.testing.assert_allclose(got["loss"][1], losses, rtol=1e-4)
    np.testing.assert_allclose(got["grad_norm/linf"][1], norms["linf"], rtol=1e-4)
    np.testing.assert_allclose(got["learning_rate"][1], 0.1, rtol=1e-6)


# Other writers ------------------------------------------------------------------------------


def test_tensorboardx_snippet_tags_are_detected(tmp_path):
    # docs/logging.md's tensorboardX snippet, with made-up per-batch numbers.
    from tensorboardX import SummaryWriter

    rng = np.random.default_rng(4)
    losses = np.exp(-np.arange(50) / 20) + 0.05 * rng.random(50)
    grad_norms = 1 + rng.random(50)
    rates = 1e-3 * np.minimum(1, (np.arange(50) + 1) / 10)

    writer = SummaryWriter(str(tmp_path / "run"))
    for step in range(50):
        loss, grad_norm, lr = losses[step], grad_norms[step], rates[step]
        writer.add_scalar("train/loss", loss, step)
        writer.add_scalar("train/grad_norm", grad_norm, step)
        writer.add_scalar("train/learning_rate", lr, step)
    writer.close()

    reader = LogdirReader(str(tmp_path))
    reader.reload()
    assert reader.runs() == ["run"]
    roles = detect_roles(reader.tags("run"))
    assert roles == {"loss": "train/loss", "grad_norm": "train/grad_norm", "learning_rate": "train/learning_rate"}
    for tag, expected in zip(roles.values(), (losses, grad_norms, rates)):
        series = reader.series("run", tag)
        np.testing.assert_array_equal(series.step, np.arange(50))
        np.testing.assert_allclose(series.value, expected.astype(np.float32), rtol=1e-7)
