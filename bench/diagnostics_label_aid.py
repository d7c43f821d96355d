"""Lists gradient-norm spike candidates of a corpus run for labelling, by a rule independent of
the detector: points where the gradient norm is at least 10x the median of its 100 neighbours
(50 before, 50 after, the point itself left out), grouped when at most 2 points apart. The
labeller checks each on the zoomed plots (bench/diagnostics_plots.py) before keeping it.

    .venv/bin/python -m bench.diagnostics_label_aid NAME [FACTOR]
"""

import os
import sys

import numpy as np

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "diagnostics_corpus")


def candidates(grad, factor=10.0, half=50):
    log = np.log(np.maximum(grad.astype(np.float64), np.finfo(np.float64).tiny))
    n = len(log)
    padded = np.concatenate([np.full(half, np.nan), log, np.full(half, np.nan)])
    windows = np.lib.stride_tricks.sliding_window_view(padded, 2 * half + 1).copy()
    windows[:, half] = np.nan
    centre = np.nanmedian(windows, axis=1)
    ratio = np.exp(log - centre)
    index = np.flatnonzero(ratio >= factor)
    groups = []
    for i in index:
        if groups and i - groups[-1][1] <= 3:
            groups[-1][1] = i
        else:
            groups.append([i, i])
    return [(a, b, float(ratio[a : b + 1].max())) for a, b in groups], n


if __name__ == "__main__":
    name = sys.argv[1]
    factor = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    data = np.load(os.path.join(CORPUS, name + ".npz"))
    found, n = candidates(data["grad_norm"], factor)
    print(f"{name}: {len(found)} candidates in {n} steps")
    print(" ".join(f"{a}-{b}:{r:.0f}x" if a != b else f"{a}:{r:.0f}x" for a, b, r in found))
