"""metadata.running_mean: a series logged as a running mean since the epoch's start."""

import numpy as np
import pandas as pd
import pytest

from tb_batchavg import metadata


@pytest.mark.parametrize("m", [1, 2, 3, 7, 8, 10, 33])
@pytest.mark.parametrize("n", [40, 1001, 65_537])
def test_moving_max_equals_pandas_rolling_max(n, m):
    d = np.random.default_rng(n + m).standard_exponential(n)
    d[n // 3] = 1e308  # (pandas turns inf into NaN in rolling windows, so no inf here)
    want = pd.Series(d).rolling(m).max().to_numpy()[m - 1 :]
    np.testing.assert_array_equal(metadata._moving_max(np, d, m), want)


def _running_means(batch_losses, period):
    """What Keras logs as batch_loss: the mean of the epoch's batches so far."""
    epochs = batch_losses.reshape(-1, period)
    return (np.cumsum(epochs, axis=1) / np.arange(1, period + 1)).ravel()


def test_a_running_mean_is_recognised_by_its_resets():
    rng = np.random.default_rng(0)
    period, epochs = 200, 6
    loss = np.exp(-np.arange(period * epochs) / 500) + 0.3 * rng.standard_normal(period * epochs)
    steps = np.arange(period * epochs) + 1000
    found = metadata.running_mean("train/loss", steps, _running_means(loss, period))
    assert found is not None and found["recognised_by"] == ["reset pattern"]
    assert found["period"] == period
    assert found["resets"] == [1000 + e * period for e in range(epochs)]


def test_per_batch_noise_is_not_a_running_mean():
    rng = np.random.default_rng(1)
    loss = np.exp(-np.arange(1200) / 500) + 0.3 * rng.standard_normal(1200)
    assert metadata.running_mean("train/loss", np.arange(1200), loss) is None
