"""Names, constants and defaults shared by the Batch Averages plugin.

Nothing here imports TensorBoard or numpy: the loader imports this module at
TensorBoard start-up, and an import error there would take TensorBoard down.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy.typing as npt

PLUGIN_NAME = "batchavg"
TAB_NAME = "Batch Averages"

# The tab is shown exactly when some run has scalar data.
DATA_PLUGIN_NAMES = ("scalars",)

# Averaging -----------------------------------------------------------------
METHODS = ("sma", "ema", "median", "block")
ALIGNS = ("trailing", "centered")
EDGES = ("valid", "partial")
UNITS = ("points", "steps")
BANDS = ("none", "std", "minmax")
X_FORMATS = ("csv", "json")

DEFAULT_METHOD = "sma"
DEFAULT_WINDOW = 50
DEFAULT_WEIGHT = 0.6  # TensorBoard's default smoothing weight
DEFAULT_ALIGN = "trailing"
DEFAULT_EDGES = "valid"
DEFAULT_UNIT = "points"
DEFAULT_BAND = "none"

# Correlation ---------------------------------------------------------------
DEFAULT_CORR_WINDOW = 200
DEFAULT_MAX_LAG = 50
MAX_LAG_LIMIT = 10000

# Responses -----------------------------------------------------------------
DEFAULT_MAX_POINTS = 2000
MAX_POINTS_LIMIT = 100000
MAX_WINDOW = 10_000_000

# Reader and cache ----------------------------------------------------------
DEFAULT_CACHE_MB = 512
DEFAULT_RELOAD_SECONDS = 2.0

# Tag roles -------------------------------------------------------------------
# A tag is matched on its full name, case-insensitively. The patterns allow an
# optional prefix such as "train/" or "train_" and, for the gradient norm, a
# norm suffix such as "/l2". Earlier patterns win when several tags match.
ROLE_PATTERNS = {
    "loss": (
        r"(?:train(?:ing)?[/_])loss",
        r"loss",
        # Keras's own TensorBoard callback writes batch_loss as the epoch's running mean, so a
        # true per-batch loss logged beside it under the names above is preferred.
        r"(?:.*[/_])?batch_loss",
        r"(?:.*[/_])?loss(?:/.*)?",
    ),
    "grad_norm": (
        r"(?:.*[/_])?grad(?:ient)?s?_?norm(?:/(?:l1|l2|linf|global))?",
        r"(?:.*[/_])?global_?norm",
        r"(?:.*[/_])?grad(?:ient)?s?/(?:global_)?norm",
    ),
    "learning_rate": (
        r"(?:.*[/_])?learning_?rate",
        r"(?:.*[/_])?lr",
    ),
}
ROLES = tuple(ROLE_PATTERNS)

_HELD_OUT = re.compile(r"(?:^|[/_])(?:val|valid|validation|eval|test)(?:[/_]|$)", re.I)
# A run whose path has a component naming a held-out split (Keras writes <log_dir>/validation
# beside <log_dir>/train; "eval", "test", "val_2" likewise) is evaluated, not trained, per batch.
_HELD_OUT_RUN = re.compile(r"(?:val|valid|validation|eval|evaluation|test|testing|holdout)(?:[_-]?[0-9]+)?", re.I)
# Keras writes one point per epoch under epoch_<metric> (epoch_loss, epoch_learning_rate, ...):
# not a batch series.
_EPOCH_TAG = re.compile(r"(?:.*/)?epoch(?:_.*)?", re.I)
# keras.callbacks.TensorBoard(update_freq=...) writes batch_<metric> as the metric's running mean
# since the start of the epoch (what Keras hands its callbacks), not the batch's value.
_KERAS_RUNNING_MEAN = re.compile(r"(?:.*/)?batch_(?!learning_rate$|lr$).+", re.I)

_COMPILED = {role: tuple(re.compile(p, re.IGNORECASE) for p in patterns) for role, patterns in ROLE_PATTERNS.items()}


def held_out_run(run: str | None) -> bool:
    """Whether the run's path marks it as a held-out split (a component such as "validation",
    "eval", "test", "val_2"; see _HELD_OUT_RUN)."""
    return any(_HELD_OUT_RUN.fullmatch(part) for part in re.split(r"[/\\]", run or ""))


def batch_series(tag: str, count: int | None = None) -> bool:
    """Whether `tag` may play a role: not a validation/test tag, not a Keras epoch_* summary, and
    (when its number of points `count` is known) more than one point: a one-point series (an
    hparams summary such as hparam/loss, a final metric) is no per-batch curve."""
    return not (_HELD_OUT.search(tag) or _EPOCH_TAG.fullmatch(tag) or (count is not None and count < 2))


def keras_running_mean_tag(tag: str) -> bool:
    """Whether `tag` is named as Keras's TensorBoard callback names its running means
    (batch_loss, batch_accuracy, ...)."""
    return bool(_KERAS_RUNNING_MEAN.fullmatch(tag))


def detect_roles(
    tags: Iterable[str], run: str | None = None, counts: Mapping[str, int] | None = None
) -> dict[str, str | None]:
    """Maps each role to the tag that plays it, or None.

    For each role the patterns are tried in order; among the tags matching the
    first pattern that matches any, the shortest name (then the first in sorted
    order) wins. A tag plays at most one role. Never picked: a validation tag
    (one that is a validation or test split, e.g. "val_loss", "validation/loss"),
    a Keras epoch_* tag, a tag with one point (with `counts`, {tag: points}),
    and any tag of a run whose name marks it as held out (`held_out_run`). The
    tab still lets a user pick any of them by hand.
    """
    roles = {role: None for role in ROLES}
    if run is not None and held_out_run(run):
        return roles
    counts = counts or {}
    candidates = sorted(t for t in tags if batch_series(t, counts.get(t)))
    taken = set()
    for role in ROLES:
        for pattern in _COMPILED[role]:
            matches = [t for t in candidates if t not in taken and pattern.fullmatch(t)]
            if matches:
                roles[role] = min(matches, key=lambda t: (len(t), t))
                taken.add(roles[role])
                break
    return roles


# Running means since the epoch's start -------------------------------------------------------
RUNNING_MEAN_LOOKBACK = 10  # an epoch start jumps by more than 4x every change of these points before
RUNNING_MEAN_MIN_RESETS = 2


def running_mean(tag: str, steps: npt.ArrayLike, values: npt.ArrayLike) -> dict[str, Any] | None:
    """Recognises a series logged as a running mean since the epoch's start (Keras's batch_loss):
    by its Keras name, or by its reset pattern. Returns None, or
    {"recognised_by": [...], "resets": [steps of epoch starts], "period": points per epoch | None}.

    The pattern: within an epoch the k-th value moves by |x_k - mean|/k, so the step-to-step
    changes shrink through each epoch and jump back at its start. Epoch starts are the points
    whose change exceeds 4 times every change of the RUNNING_MEAN_LOOKBACK points before; the
    series is a running mean when at least RUNNING_MEAN_MIN_RESETS such starts recur with one
    period (most gaps equal, to within one point; Keras epochs have equal batch counts) and the
    changes in the first tenth of its epochs are, at the median, at least 4 times those of their
    second halves. Per-batch noise (stationary changes) almost never shows both. The first step of
    the series always counts as a start. numpy is imported here only: this module must import
    without it.
    """
    import numpy as np

    steps = np.asarray(steps)
    values = np.asarray(values, dtype=np.float64)
    by_name = keras_running_mean_tag(tag)
    finite = np.isfinite(values)
    y, s = (values, steps) if finite.all() else (values[finite], steps[finite])
    resets, period = _reset_pattern(np, y)
    by_pattern = resets is not None
    if not (by_name or by_pattern):
        return None
    starts = [int(s[0])] if len(s) else []
    if by_pattern:
        starts = sorted(set(starts) | set(s[resets].tolist()))
    return {
        "recognised_by": (["tag name"] if by_name else []) + (["reset pattern"] if by_pattern else []),
        "resets": starts,
        "period": period,
    }


def _moving_max(np, d, m):
    """max(d[j..j+m-1]) for j = 0..len(d)-m, from maxima over doubling spans and two overlapping
    ones (exact). Kept for this short window (m = 10), paid by a run's first averages request: at
    1M points it takes 4.5 ms where stats.extremes.window_extremes (both extremes, any window)
    takes 43 ms and reducing a sliding_window_view 40-90 ms; all three give equal arrays."""
    span, out = 1, d
    while 2 * span <= m:
        out = np.maximum(out[:-span], out[span:])
        span *= 2
    return np.maximum(out[: len(out) - (m - span)], out[m - span :])


def _reset_pattern(np, y):
    """(indices of epoch starts, period in points) of a running-mean pattern in the finite
    values y, or (None, None)."""
    m = RUNNING_MEAN_LOOKBACK
    n = len(y)
    if n < 4 * m:
        return None, None
    d = np.abs(np.diff(y))  # d[i]: change into point i + 1
    before = np.full(len(d), np.inf)
    before[m:] = _moving_max(np, d, m)[:-1]  # max of d[i-m..i-1] for i >= m
    starts = np.flatnonzero(d > 4 * before) + 1
    if len(starts) < RUNNING_MEAN_MIN_RESETS:
        return None, None
    gaps = np.diff(starts)
    period = int(np.median(gaps))
    if period < 2 * m or np.count_nonzero(np.abs(gaps - period) <= 1) < max(1, 0.6 * len(gaps)):
        return None, None
    early, late = [], []
    for first in starts:
        stop = min(first + period, n)
        if stop - first < period:
            break
        early.append(d[first : first + max(1, period // 10)])
        late.append(d[first + period // 2 : stop - 1])
    if not early:
        return None, None
    if not np.median(np.concatenate(early)) >= 4 * np.median(np.concatenate(late)):
        return None, None
    return starts, period
