"""PNG plots of a corpus run for labelling by eye (not committed):

    .venv/bin/python -m bench.diagnostics_plots NAME [START END] [--out DIR]

Three panels sharing the step axis: loss (log scale), gradient norm (log scale), learning rate;
START END zoom into a step range. Made before the detector is run on the run.
"""

import argparse
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

CORPUS = os.environ.get("CORPUS_DIR") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "diagnostics_corpus"
)


def plot(name, start=None, end=None, out="/tmp/corpus_plots"):
    os.makedirs(out, exist_ok=True)
    data = np.load(os.path.join(CORPUS, name + ".npz"))
    step = data["step"]
    keep = slice(None) if start is None else (step >= start) & (step <= end)
    fig, axes = plt.subplots(3, 1, figsize=(16, 9), sharex=True, gridspec_kw={"height_ratios": [3, 3, 1]})
    for ax, role in zip(axes, ("loss", "grad_norm", "learning_rate")):
        values = data[role].astype(np.float64)[keep]
        ax.plot(step[keep], values, lw=0.4)
        if role != "learning_rate" and np.nanmin(values) > 0:
            ax.set_yscale("log")
        ax.set_ylabel(role)
        ax.grid(True, which="major", alpha=0.4)
        ax.minorticks_on()
        ax.grid(True, which="minor", axis="x", alpha=0.15)
    axes[0].set_title(name + ("" if start is None else f" [{start}, {end}]"))
    fig.tight_layout()
    path = os.path.join(out, f"{name}" + ("" if start is None else f"_{start}_{end}") + ".png")
    fig.savefig(path, dpi=70)
    plt.close(fig)
    return path


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("name")
    parser.add_argument("range", nargs="*", type=int)
    parser.add_argument("--out", default="/tmp/corpus_plots")
    args = parser.parse_args()
    print(plot(args.name, *args.range, out=args.out))


def tile(name, ranges, out="/tmp/corpus_plots", log_loss=False):
    """One PNG of several zooms (loss above, gradient norm below, per range), for labelling."""
    os.makedirs(out, exist_ok=True)
    data = np.load(os.path.join(CORPUS, name + ".npz"))
    step = data["step"]
    columns = 3
    rows = -(-len(ranges) // columns)
    fig, axes = plt.subplots(2 * rows, columns, figsize=(7 * columns, 4.2 * rows), squeeze=False)
    for k, (start, end) in enumerate(ranges):
        keep = (step >= start) & (step <= end)
        top, bottom = axes[2 * (k // columns), k % columns], axes[2 * (k // columns) + 1, k % columns]
        top.plot(step[keep], data["loss"][keep], lw=0.6)
        if log_loss:
            top.set_yscale("log")
        top.set_title(f"{start}-{end}")
        bottom.plot(step[keep], data["grad_norm"][keep], lw=0.6, color="C1")
        bottom.set_yscale("log")
        for ax in (top, bottom):
            ax.minorticks_on()
            ax.grid(True, which="both", axis="x", alpha=0.3)
    for k in range(len(ranges), rows * columns):
        axes[2 * (k // columns), k % columns].axis("off")
        axes[2 * (k // columns) + 1, k % columns].axis("off")
    fig.tight_layout()
    path = os.path.join(out, f"{name}_tile.png")
    fig.savefig(path, dpi=60)
    plt.close(fig)
    return path
