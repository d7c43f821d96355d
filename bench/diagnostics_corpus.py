"""Trains the real runs of the diagnostics corpus (tests/data/diagnostics_corpus/).

Each recipe is a small TensorFlow/Keras model trained on CPU for a few minutes; every batch's
loss, global L2 gradient norm and learning rate are recorded inside the compiled train step
and saved as compact float32 arrays (``<name>.npz``: step, loss, grad_norm, learning_rate).
Labels are written by hand from the plots (``bench/diagnostics_plots.py``), never from the
detector: see docs/diagnostics-corpus.md.

    nice -n 10 .venv/bin/python -m bench.diagnostics_corpus NAME [NAME ...]   # or "all"
"""

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "diagnostics_corpus")
CHUNK = 100  # steps per call of the compiled loop


def _tf():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    tf.config.threading.set_inter_op_parallelism_threads(1)
    return tf


# Data -----------------------------------------------------------------------------------------


def transformer_data(task, seed, count=8192, length=32, vocab=64):
    """(inputs, targets, weights) of next-token prediction. "bigram": the first half follows a
    sparse random bigram chain, the second half copies it; "copy": the first half is uniform
    random tokens, the loss is taken on the copied half only."""
    rng = np.random.default_rng(seed)
    half = length // 2 + 1
    if task == "copy":
        first = rng.integers(0, vocab, (count, half))
    else:
        transition = rng.dirichlet(np.full(vocab, 0.1), vocab)
        first = np.empty((count, half), np.int64)
        first[:, 0] = rng.integers(0, vocab, count)
        cumulative = transition.cumsum(axis=1)
        for j in range(1, half):
            u = rng.random(count)[:, None]
            first[:, j] = np.minimum((u > cumulative[first[:, j - 1]]).sum(axis=1), vocab - 1)
    tokens = np.concatenate([first, first], axis=1)[:, : length + 1]
    weights = np.ones((count, length), np.float32)
    if task == "copy":
        weights[:, : half - 1] = 0.0
    return tokens[:, :-1].astype(np.int32), tokens[:, 1:].astype(np.int32), weights


def teacher_data(seed, count=2048, classes=10):
    """Inputs N(0, 1) of 20 features; targets of a random two-layer teacher: class labels
    (argmax of `classes` outputs) or, with classes=1, a regression target of unit variance."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((count, 20)).astype(np.float32)
    w1 = rng.standard_normal((20, 64)) / np.sqrt(20)
    w2 = rng.standard_normal((64, max(classes, 1))) / np.sqrt(64)
    out = np.tanh(x @ w1) @ w2
    if classes == 1:
        y = ((out - out.mean()) / out.std()).astype(np.float32)
    else:
        y = out.argmax(axis=1).astype(np.int32)
    return x, y


# Models ---------------------------------------------------------------------------------------


def transformer(tf, keras, vocab=64, length=32, d_model=64, heads=4, ff=256, layers=2):
    tokens = keras.Input((length,), dtype="int32")
    x = keras.layers.Embedding(vocab, d_model)(tokens)
    positions = keras.layers.Embedding(length, d_model)(tf.range(length)[None, :])
    x = x + positions
    for _ in range(layers):
        h = keras.layers.LayerNormalization()(x)
        h = keras.layers.MultiHeadAttention(heads, d_model // heads)(h, h, use_causal_mask=True)
        x = x + h
        h = keras.layers.LayerNormalization()(x)
        h = keras.layers.Dense(ff, activation="relu")(h)
        x = x + keras.layers.Dense(d_model)(h)
    x = keras.layers.LayerNormalization()(x)
    return keras.Model(tokens, keras.layers.Dense(vocab)(x))


def mlp(keras, outputs):
    return keras.Sequential(
        [
            keras.Input((20,)),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(outputs),
        ]
    )


# Recipes --------------------------------------------------------------------------------------


def _sgdr(keras, peak):
    return keras.optimizers.schedules.CosineDecayRestarts(peak, first_decay_steps=1000, t_mul=2.0, m_mul=1.0, alpha=0.0)


RECIPES = {}


def recipe(name, **kwargs):
    RECIPES[name] = kwargs


# Transformer, bigram/copy task, Adam at a constant rate, no warm-up.
for lr, seeds in ((3e-2, (0, 1, 2)), (1e-1, (0, 1)), (5e-3, (0,)), (1e-3, (0, 1))):
    for seed in seeds:
        recipe(
            f"tfm_bigram_adam{lr:g}_s{seed}",
            model="transformer",
            task="bigram",
            optimizer="adam",
            lr=lr,
            steps=4000,
            seed=seed,
        )
# Transformer, pure copy task, Adam eps=1e-12, beta2=0.99: slingshots after near-zero loss.
for lr, seeds in ((1e-3, (0, 1)), (3e-3, (0, 1))):
    for seed in seeds:
        recipe(
            f"tfm_copy_eps_adam{lr:g}_s{seed}",
            model="transformer",
            task="copy",
            optimizer="adam",
            lr=lr,
            epsilon=1e-12,
            beta_2=0.99,
            steps=6000,
            seed=seed,
        )
# MLP classifier, Adam eps=1e-12, beta2=0.99, 3e-3: repeated slingshots.
for seed in (0, 1, 2):
    recipe(
        f"mlp_cls_eps_adam3e-3_s{seed}",
        model="mlp_cls",
        optimizer="adam",
        lr=3e-3,
        epsilon=1e-12,
        beta_2=0.99,
        steps=19000,
        seed=seed,
    )
# MLP regressor, SGD momentum 0.9. With this teacher: 0.08-0.18 converge towards 1e-12;
# 0.21 seed 0 catapults early, then trains. (0.21 seeds 1-2 and 0.25 catapult in the first
# 300 steps and then never learn: the loss stays at the constant predictor's 1.0 from the
# start; left out as ambiguous, the diagnostics have no "stalled" status.)
for lr, seeds in ((0.08, (0, 1)), (0.15, (0,)), (0.18, (0,)), (0.21, (0,)), (0.01, (0,))):
    for seed in seeds:
        recipe(
            f"mlp_reg_sgd{lr:g}_s{seed}", model="mlp_reg", optimizer="sgd", lr=lr, momentum=0.9, steps=10000, seed=seed
        )
# SGDR restarts at 1000, 3000 and 7000: healthy.
for seed in (0, 1):
    recipe(f"mlp_cls_sgdr_adam_s{seed}", model="mlp_cls", optimizer="adam", lr=3e-3, sgdr=True, steps=10000, seed=seed)
    recipe(
        f"mlp_reg_sgdr_sgd_s{seed}",
        model="mlp_reg",
        optimizer="sgd",
        lr=0.04,
        momentum=0.9,
        sgdr=True,
        steps=10000,
        seed=seed,
    )
recipe(
    "tfm_bigram_sgdr_adam_s0",
    model="transformer",
    task="bigram",
    optimizer="adam",
    lr=3e-3,
    sgdr=True,
    steps=8000,
    seed=0,
)
# Divergence: SGD (momentum 0.9) with the rate raised exponentially 3000-fold over 8000 steps,
# from 1e-3 (the classifier) or 1e-4 (the regressor), until training breaks down; and the
# regressor at 0.02 whose rate steps up 15-fold at step 3000.
for seed in (0, 1):
    recipe(
        f"mlp_cls_sgd_ramp_s{seed}",
        model="mlp_cls",
        optimizer="sgd",
        lr=1e-3,
        momentum=0.9,
        ramp=3000.0,
        steps=8000,
        seed=seed,
    )
    recipe(
        f"mlp_reg_sgd_ramp_s{seed}",
        model="mlp_reg",
        optimizer="sgd",
        lr=1e-4,
        momentum=0.9,
        ramp=3000.0,
        steps=8000,
        seed=seed,
    )
    recipe(
        f"mlp_reg_sgd_stepup_s{seed}",
        model="mlp_reg",
        optimizer="sgd",
        lr=0.02,
        momentum=0.9,
        step_up=(3000, 15.0),
        steps=8000,
        seed=seed,
    )
# Controls at safe rates.
for seed in (0, 1):
    recipe(f"mlp_cls_adam1e-3_s{seed}", model="mlp_cls", optimizer="adam", lr=1e-3, steps=10000, seed=seed)


# Held out (labels.json "held_out"): new seeds of the recipes above, trained after the detectors
# were tuned on the others.
recipe("tfm_bigram_adam0.03_s3", model="transformer", task="bigram", optimizer="adam", lr=3e-2, steps=4000, seed=3)
for seed in (3, 4):
    recipe(
        f"mlp_cls_eps_adam3e-3_s{seed}",
        model="mlp_cls",
        optimizer="adam",
        lr=3e-3,
        epsilon=1e-12,
        beta_2=0.99,
        steps=19000,
        seed=seed,
    )
recipe("mlp_cls_sgdr_adam_s2", model="mlp_cls", optimizer="adam", lr=3e-3, sgdr=True, steps=10000, seed=2)
recipe("mlp_reg_sgdr_sgd_s2", model="mlp_reg", optimizer="sgd", lr=0.04, momentum=0.9, sgdr=True, steps=10000, seed=2)
recipe("mlp_reg_sgd_ramp_s2", model="mlp_reg", optimizer="sgd", lr=1e-4, momentum=0.9, ramp=3000.0, steps=8000, seed=2)
recipe(
    "mlp_reg_sgd_stepup_s2",
    model="mlp_reg",
    optimizer="sgd",
    lr=0.02,
    momentum=0.9,
    step_up=(3000, 15.0),
    steps=8000,
    seed=2,
)
recipe("mlp_cls_adam1e-3_s2", model="mlp_cls", optimizer="adam", lr=1e-3, steps=10000, seed=2)
recipe("mlp_reg_sgd0.08_s2", model="mlp_reg", optimizer="sgd", lr=0.08, momentum=0.9, steps=10000, seed=2)

# Held out, second batch: trained after the first held-out batch was scored (and the detectors
# then changed once), so these were never seen by any version of the detectors before scoring.
recipe(
    "mlp_cls_eps_adam3e-3_s5",
    model="mlp_cls",
    optimizer="adam",
    lr=3e-3,
    epsilon=1e-12,
    beta_2=0.99,
    steps=19000,
    seed=5,
)
recipe("mlp_cls_sgdr_adam_s3", model="mlp_cls", optimizer="adam", lr=3e-3, sgdr=True, steps=10000, seed=3)
recipe("mlp_reg_sgdr_sgd_s3", model="mlp_reg", optimizer="sgd", lr=0.04, momentum=0.9, sgdr=True, steps=10000, seed=3)
recipe("mlp_reg_sgd_ramp_s3", model="mlp_reg", optimizer="sgd", lr=1e-4, momentum=0.9, ramp=3000.0, steps=8000, seed=3)
recipe(
    "mlp_reg_sgd_stepup_s3",
    model="mlp_reg",
    optimizer="sgd",
    lr=0.02,
    momentum=0.9,
    step_up=(3000, 15.0),
    steps=8000,
    seed=3,
)
recipe("mlp_cls_adam1e-3_s3", model="mlp_cls", optimizer="adam", lr=1e-3, steps=10000, seed=3)
recipe("mlp_reg_sgd0.15_s1", model="mlp_reg", optimizer="sgd", lr=0.15, momentum=0.9, steps=10000, seed=1)
recipe("mlp_cls_sgd_ramp_s2", model="mlp_cls", optimizer="sgd", lr=1e-3, momentum=0.9, ramp=3000.0, steps=8000, seed=2)


def train(name):
    spec = RECIPES[name]
    tf = _tf()
    import keras

    seed = spec["seed"]
    keras.utils.set_random_seed(seed)
    if spec["model"] == "transformer":
        x, y, w = transformer_data(spec["task"], seed)
        model = transformer(tf, keras)
        dataset = tf.data.Dataset.from_tensor_slices((x, y, w))

        def loss_of(logits, y, w):
            per = keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True)
            return tf.reduce_sum(per * w) / tf.reduce_sum(w)
    elif spec["model"] == "mlp_cls":
        x, y = teacher_data(seed, classes=10)
        model = mlp(keras, 10)
        dataset = tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(x), np.float32)))

        def loss_of(logits, y, w):
            return tf.reduce_mean(keras.losses.sparse_categorical_crossentropy(y, logits, from_logits=True))
    else:
        x, y = teacher_data(seed, classes=1)
        model = mlp(keras, 1)
        dataset = tf.data.Dataset.from_tensor_slices((x, y, np.ones(len(x), np.float32)))

        def loss_of(out, y, w):
            return tf.reduce_mean(tf.square(out - y))

    batch = 32 if spec["model"] == "transformer" else 64
    dataset = dataset.shuffle(len(x), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch, drop_remainder=True).repeat().prefetch(2)
    lr = spec["lr"]
    if spec.get("sgdr"):
        lr = _sgdr(keras, spec["lr"])
    elif spec.get("ramp"):
        lr = keras.optimizers.schedules.ExponentialDecay(spec["lr"], spec["steps"], spec["ramp"])
    elif spec.get("step_up"):
        at, factor = spec["step_up"]
        lr = keras.optimizers.schedules.PiecewiseConstantDecay([at], [spec["lr"], spec["lr"] * factor])
    if spec["optimizer"] == "adam":
        optimizer = keras.optimizers.Adam(lr, beta_2=spec.get("beta_2", 0.999), epsilon=spec.get("epsilon", 1e-7))
    else:
        optimizer = keras.optimizers.SGD(lr, momentum=spec.get("momentum", 0.0))
    optimizer.build(model.trainable_variables)
    iterator = iter(dataset)

    @tf.function
    def chunk(iterator):
        losses = tf.TensorArray(tf.float32, CHUNK)
        norms = tf.TensorArray(tf.float32, CHUNK)
        rates = tf.TensorArray(tf.float32, CHUNK)
        for i in tf.range(CHUNK):
            xb, yb, wb = next(iterator)
            with tf.GradientTape() as tape:
                loss = loss_of(model(xb, training=True), yb, wb)
            grads = tape.gradient(loss, model.trainable_variables)
            rate = tf.cast(optimizer.learning_rate, tf.float32)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            losses = losses.write(i, tf.cast(loss, tf.float32))
            norms = norms.write(i, tf.cast(tf.linalg.global_norm(grads), tf.float32))
            rates = rates.write(i, rate)
        return losses.stack(), norms.stack(), rates.stack()

    started = time.time()
    parts = []
    for _ in range(spec["steps"] // CHUNK):
        parts.append([a.numpy() for a in chunk(iterator)])
    loss, norm, rate = (np.concatenate([p[k] for p in parts]) for k in range(3))
    np.savez_compressed(
        os.path.join(OUT, name + ".npz"),
        step=np.arange(len(loss), dtype=np.int32),
        loss=loss.astype(np.float32),
        grad_norm=norm.astype(np.float32),
        learning_rate=rate.astype(np.float32),
    )
    print(
        f"{name}: {len(loss)} steps in {time.time() - started:.0f} s; loss {loss[0]:.3g} -> "
        f"{loss[-1]:.3g}, min {np.nanmin(loss):.3g}",
        flush=True,
    )


def main(names):
    if names == ["all"]:
        names = list(RECIPES)
    if names == ["list"]:
        print("\n".join(RECIPES))
        return
    with open(os.path.join(OUT, "recipes.json"), "w") as f:
        json.dump(RECIPES, f, indent=1, sort_keys=True)
    for name in names:
        if os.path.exists(os.path.join(OUT, name + ".npz")):
            print(f"{name}: exists, skipped", flush=True)
            continue
        train(name)


if __name__ == "__main__":
    main(sys.argv[1:])
