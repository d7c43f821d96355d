"""Names, constants and defaults shared by the Batch Averages plugin.

Nothing here imports TensorBoard or numpy: the loader imports this module at
TensorBoard start-up, and an import error there would take TensorBoard down.
"""

import re

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

_COMPILED = {
    role: tuple(re.compile(p, re.IGNORECASE) for p in patterns)
    for role, patterns in ROLE_PATTERNS.items()
}


def detect_roles(tags):
    """Maps each role to the tag that plays it, or None.

    For each role the patterns are tried in order; among the tags matching the
    first pattern that matches any, the shortest name (then the first in sorted
    order) wins. A tag plays at most one role; a validation tag (one that
    is a validation or test split, e.g. "val_loss", "validation/loss") is
    never picked.
    """
    candidates = sorted(t for t in tags if not _HELD_OUT.search(t))
    roles = {}
    taken = set()
    for role in ROLES:
        roles[role] = None
        for pattern in _COMPILED[role]:
            matches = [t for t in candidates if t not in taken and pattern.fullmatch(t)]
            if matches:
                roles[role] = min(matches, key=lambda t: (len(t), t))
                taken.add(roles[role])
                break
    return roles
