"""The writing side: log, at every batch, the loss, the gradient norm and the learning rate that
the Batch Averages tab reads.

- `log_batch(step, loss, gradients, optimizer)` for custom TensorFlow training loops, eager or
  inside `tf.function`, to the default summary writer or a given one.
- `BatchAverages(logdir)`, a Keras 3 callback for `model.fit(..., callbacks=[...])`.

Tags, with the default prefix "train": `train/loss`, `train/grad_norm` (`train/grad_norm/l1` and
`train/grad_norm/linf` for the other norms) and `train/learning_rate`, which the tab's role
patterns (`tb_batchavg.metadata.detect_roles`) find with no configuration.

Conventions shared by both helpers:
- The step of a batch is the optimizer's step count before that batch's update (0 for the
  first batch), and the learning rate logged at step s is the one that update used: a
  `LearningRateSchedule` evaluated at s.
- The gradient norm treats all gradients as one flat vector: "l2" = sqrt(sum g^2) (what
  `tf.linalg.global_norm` computes), "l1" = sum |g|, "linf" = max |g|. It is computed before any
  clipping the optimizer does. NaN and Inf propagate: they are information for the tab.

TensorFlow (and Keras) are imported on first use, so importing this module costs nothing; it needs
`pip install "tb-batchavg[tf]"`.
"""

from __future__ import annotations

import contextlib
import math
import time
import warnings
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # never at run time: importing this module must not import TensorFlow
    import keras
    import tensorflow as tf

__all__ = ["BatchAverages", "NORMS", "gradient_norm", "log_batch"]  # noqa: F822 (BatchAverages: module __getattr__, TensorFlow imported lazily)

NORMS = ("l2", "l1", "linf")

# Columns of the callback's per-batch record.
_STEP, _LOSS, _HAS_LOSS, _GRAD_NORM, _LEARNING_RATE = range(5)
_ABSENT = object()
# The callback writes what it recorded at least this often (and at each epoch's end).
_WRITE_SECONDS = 1.0


def _tf():
    try:
        import tensorflow as tf
    except ImportError as error:
        raise ImportError("tb_batchavg.summary needs TensorFlow: pip install 'tb-batchavg[tf]'") from error
    return tf


def _keras():
    _tf()
    import keras

    if int(keras.__version__.split(".")[0]) < 3:
        raise ImportError("tb_batchavg.summary needs Keras 3 (found %s)" % keras.__version__)
    return keras


def _check_norm(norm):
    if norm not in NORMS:
        raise ValueError("norm must be one of %s, not %r" % (", ".join(NORMS), norm))


def _tags(prefix, norm):
    """Tag of each role: "<prefix>/loss", "<prefix>/grad_norm[/<norm> unless l2]",
    "<prefix>/learning_rate"; no prefix when it is empty."""
    head = prefix.rstrip("/") + "/" if prefix else ""
    return {
        "loss": head + "loss",
        "grad_norm": head + "grad_norm" + ("" if norm == "l2" else "/" + norm),
        "learning_rate": head + "learning_rate",
    }


def _write_scalar(tag, value, step):
    """`tf.summary.scalar` with `tag` exactly: tf.summary.scalar prefixes active name scopes,
    and autograph loops in a tf.function open some ("while/")."""
    tf = _tf()
    from tensorboard.plugins.scalar import metadata

    return tf.summary.write(
        tag,
        tf.cast(value, tf.float32),
        step=step,
        metadata=metadata.create_summary_metadata(display_name=None, description=None),
    )


def gradient_norm(gradients: Iterable[tf.Tensor | tf.IndexedSlices | None], norm: str = "l2") -> tf.Tensor:
    """Norm of a list of gradients taken together as one flat vector (a scalar tensor).

    "l2": sqrt(sum g^2), equal to `tf.linalg.global_norm`; "l1": sum |g|; "linf": max |g|.
    None entries (variables without a gradient) are skipped. An `IndexedSlices` gradient (from
    an embedding lookup) is made dense first, so rows repeated in a batch are summed as the
    variable's true gradient sums them. Computed in float32, or float64 if a gradient is
    float64. NaN and Inf propagate.
    """
    tf = _tf()
    _check_norm(norm)
    tensors = [tf.convert_to_tensor(g) for g in gradients if g is not None]
    if not tensors:
        raise ValueError("no gradients: every entry is None")
    dtype = tf.float64 if any(t.dtype == tf.float64 for t in tensors) else tf.float32
    tensors = [tf.cast(t, dtype) for t in tensors]
    if norm == "l2":
        return tf.linalg.global_norm(tensors)
    if norm == "l1":
        return tf.add_n([tf.reduce_sum(tf.abs(t)) for t in tensors])
    return tf.reduce_max(tf.stack([tf.reduce_max(tf.abs(t)) for t in tensors]))


def _learning_rate_at(optimizer, step):
    """The optimizer's learning rate at `step`: its schedule called with `step`, else its
    current rate. A LossScaleOptimizer's rate is its inner optimizer's."""
    keras = _keras()
    inner = getattr(optimizer, "inner_optimizer", optimizer)
    # Keras 3 keeps the schedule there; `optimizer.learning_rate` would evaluate it at the
    # optimizer's own step count, which is already past `step` after apply_gradients.
    schedule = getattr(inner, "_learning_rate", None)
    if isinstance(schedule, keras.optimizers.schedules.LearningRateSchedule):
        return schedule(step)
    return optimizer.learning_rate


def log_batch(
    step: int | tf.Tensor,
    loss: float | tf.Tensor | None,
    gradients: Iterable[tf.Tensor | tf.IndexedSlices | None] | None = None,
    optimizer: keras.optimizers.Optimizer | None = None,
    *,
    norm: str = "l2",
    writer: tf.summary.SummaryWriter | None = None,
    prefix: str = "train",
) -> dict[str, tf.Tensor]:
    """Writes one batch's loss, gradient norm and learning rate as scalar summaries at `step`.

    step: the batch's step (an int, or an int64 tensor inside `tf.function` to avoid retracing);
        use the optimizer's step count before this batch's update, e.g. the `enumerate` index.
    loss: the batch's loss (a scalar), or None to skip it.
    gradients: the batch's gradients (e.g. from `tape.gradient`), or None to skip the norm.
    optimizer: a Keras 3 optimizer, or None to skip the learning rate; a schedule is evaluated at
        `step`, a constant or variable rate is read as it is.
    norm: "l2" (default), "l1" or "linf"; see `gradient_norm`.
    writer: a `tf.summary` writer, or None for the default writer (`with writer.as_default():`).
    prefix: tag prefix; tags are "<prefix>/loss", "<prefix>/grad_norm" ("<prefix>/grad_norm/l1",
        "<prefix>/grad_norm/linf") and "<prefix>/learning_rate".

    Works eagerly and inside `tf.function` (also inside its loops: the tags are written as
    given, with no name-scope prefix). Returns {tag: scalar tensor} of what was written.
    """
    tf = _tf()
    _check_norm(norm)
    tags = _tags(prefix, norm)
    values = {}
    if loss is not None:
        values[tags["loss"]] = tf.convert_to_tensor(loss)
    if gradients is not None:
        values[tags["grad_norm"]] = gradient_norm(gradients, norm)
    if optimizer is not None:
        values[tags["learning_rate"]] = tf.convert_to_tensor(_learning_rate_at(optimizer, step))
    with writer.as_default() if writer is not None else contextlib.nullcontext():
        for tag, value in values.items():
            _write_scalar(tag, value, step)
    return values


def _set_or_delete(obj, name, value):
    if value is _ABSENT:
        delattr(obj, name)
    else:
        setattr(obj, name, value)


def _patch(obj, name, make_hook):
    """Sets `obj.<name>` on the instance to `make_hook(current method)`; returns the undo.

    A hook left by a fit that never reached its end (an exception, Ctrl-C) is replaced, not
    wrapped a second time.
    """
    current = vars(obj).get(name, _ABSENT)
    saved = getattr(current, "_batchavg_saved", current)
    if current is not saved:
        _set_or_delete(obj, name, saved)
    hook = make_hook(getattr(obj, name))
    hook._batchavg_saved = saved
    setattr(obj, name, hook)

    def undo():
        if vars(obj).get(name) is hook:
            _set_or_delete(obj, name, saved)

    return undo


def _make_batch_averages():
    tf = _tf()
    keras = _keras()

    class BatchAverages(keras.callbacks.Callback):
        """Keras 3 callback logging every training batch's true loss, gradient norm and
        learning rate: `model.fit(..., callbacks=[BatchAverages("logs/run1")])`.

        Why not the batch logs: the `loss` that Keras hands to callbacks (and that its own
        TensorBoard callback writes as `batch_loss`) is the running mean since the start of
        the epoch, not the batch's loss, and Keras does not expose gradients at all.

        How: while `fit` runs, the model's `compute_loss` and its optimizer's `apply` are
        wrapped on the instance (public methods that the default `train_step`, and custom ones
        written as Keras documents, call). Inside the compiled train step they store the batch's
        loss (the value `compute_loss` returned in training, regularisation included), the norm
        of the gradients given to the optimizer (unscaled when a LossScaleOptimizer or
        `loss_scale_factor` scaled them) and the learning rate of that update in a small
        variable, which the callback reads after each batch and writes at least once a
        second and at the end of each epoch. Nothing else in `train_step`
        changes: the progress bar, History and `logs` are as without the callback. With
        `steps_per_execution` = k the variable holds k batches, so every batch is still logged.
        At the end of `fit` the wrappers are removed and the train function is rebuilt on the
        next `fit`.

        logdir: the run directory to write to (or pass `writer=`, a `tf.summary` writer).
        norm: "l2" (default), "l1" or "linf". prefix: tag prefix, "train" by default.

        Single-device training (the default strategy); TensorFlow backend.
        """

        def __init__(
            self,
            logdir: str | None = None,
            *,
            writer: tf.summary.SummaryWriter | None = None,
            norm: str = "l2",
            prefix: str = "train",
        ) -> None:
            super().__init__()
            if (logdir is None) == (writer is None):
                raise ValueError("give either logdir or writer")
            _check_norm(norm)
            self.writer = writer if writer is not None else tf.summary.create_file_writer(logdir)
            self.norm = norm
            self.tags = _tags(prefix, norm)
            self._records = None
            self._undo = []
            self._last_step = -1
            self._unwritten = []
            self._written_at = time.monotonic()
            self._warned = set()
            self._write_rows = self._make_writer()

        def _make_writer(self):
            """A tf.function writing rows of records: one call for many batches, as eager
            tf.summary calls cost about 1 ms each."""
            writer, tags = self.writer, self.tags

            @tf.function(input_signature=[tf.TensorSpec([None, 5], tf.float64)])
            def write_rows(rows):
                with writer.as_default():
                    for i in tf.range(tf.shape(rows)[0]):
                        step = tf.cast(rows[i, _STEP], tf.int64)
                        if rows[i, _HAS_LOSS] > 0:
                            _write_scalar(tags["loss"], rows[i, _LOSS], step)
                        _write_scalar(tags["grad_norm"], rows[i, _GRAD_NORM], step)
                        _write_scalar(tags["learning_rate"], rows[i, _LEARNING_RATE], step)

            return write_rows

        def set_model(self, model: keras.Model) -> None:
            # fit calls this before it builds its train function, so the hooks are in the trace.
            super().set_model(model)
            self._remove_hooks()
            if getattr(model, "optimizer", None) is not None:
                self._install_hooks(model)

        def _install_hooks(self, model):
            optimizer = model.optimizer
            capacity = max(1, int(getattr(model, "steps_per_execution", 1) or 1))
            self._records = tf.Variable(
                tf.fill([capacity, 5], tf.constant(-1.0, tf.float64)),
                trainable=False,
                name="batchavg_records",
            )
            pending = {}

            def hook_compute_loss(compute_loss):
                def compute_loss_hook(*args, **kwargs):
                    loss = compute_loss(*args, **kwargs)
                    if kwargs.get("training", True):
                        pending["loss"] = (loss, tf.compat.v1.get_default_graph())
                    return loss

                return compute_loss_hook

            def hook_apply(apply):
                def apply_hook(grads, trainable_variables=None):
                    grads = list(grads)
                    loss, graph = pending.pop("loss", (None, None))
                    # A loss left over from another trace (a test step) is not this batch's.
                    if graph is not tf.compat.v1.get_default_graph():
                        loss = None
                    self._record(optimizer, grads, loss)
                    return apply(grads, trainable_variables)

                return apply_hook

            self._undo = [
                _patch(model, "compute_loss", hook_compute_loss),
                _patch(optimizer, "apply", hook_apply),
            ]
            model.train_function = None

        def _record(self, optimizer, grads, loss):
            """Stores (step, loss, has_loss, grad norm, learning rate) of the batch being
            applied; runs inside the train step, before the update."""
            step = tf.convert_to_tensor(optimizer.iterations)
            # The factor train_step multiplied the loss, hence the gradients, by (1.0 unless
            # loss scaling is on); apply() divides it out again.
            scale = tf.cast(tf.convert_to_tensor(optimizer.scale_loss(1.0)), tf.float64)
            norm = tf.cast(gradient_norm(grads, self.norm), tf.float64) / scale
            has_loss = loss is not None
            loss = tf.cast(tf.convert_to_tensor(loss), tf.float64) if has_loss else tf.constant(math.nan, tf.float64)
            rate = tf.cast(tf.convert_to_tensor(optimizer.learning_rate), tf.float64)
            row = tf.stack([tf.cast(step, tf.float64), loss, tf.constant(float(has_loss), tf.float64), norm, rate])
            slot = tf.math.floormod(step, tf.cast(tf.shape(self._records)[0], step.dtype))
            self._records.scatter_nd_update(tf.reshape(slot, [1, 1]), row[tf.newaxis])

        def _remove_hooks(self):
            for undo in self._undo:
                undo()
            self._undo = []

        def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
            self._last_step = int(self.model.optimizer.iterations.numpy()) - 1

        def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
            rows = self._records.numpy()
            rows = rows[rows[:, _STEP] > self._last_step]
            if not len(rows):
                self._warn_once(
                    "no batch was recorded: does the train step call optimizer.apply or optimizer.apply_gradients?"
                )
                return
            if not rows[:, _HAS_LOSS].all():
                self._warn_once(
                    "the loss is not logged: the train step did not call model.compute_loss before optimizer.apply"
                )
            rows = rows[np.argsort(rows[:, _STEP])]
            self._last_step = int(rows[-1, _STEP])
            self._unwritten.append(rows)
            if time.monotonic() - self._written_at >= _WRITE_SECONDS:
                self._write()

        def _write(self):
            if self._unwritten:
                self._write_rows(np.concatenate(self._unwritten))
                self._unwritten = []
            self.writer.flush()
            self._written_at = time.monotonic()

        def _warn_once(self, message):
            if message not in self._warned:
                self._warned.add(message)
                warnings.warn("BatchAverages: " + message, stacklevel=2)

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self._write()

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            self._write()
            self._remove_hooks()
            self.model.train_function = None

    BatchAverages.__module__ = __name__
    return BatchAverages


def __getattr__(name):
    # BatchAverages subclasses keras.callbacks.Callback, so it is built on first access.
    if name == "BatchAverages":
        cls = globals()["BatchAverages"] = _make_batch_averages()
        return cls
    raise AttributeError("module %r has no attribute %r" % (__name__, name))
