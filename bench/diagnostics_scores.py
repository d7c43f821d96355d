"""Scores of tb_batchavg.diagnostics against the labelled corpus of real runs and on long
synthetic healthy runs (see docs/diagnostics-corpus.md):

- per event kind, on the tuning runs and on the held-out runs separately: episodes labelled,
  found (recall), events reported and matching a labelled episode (precision), events per
  found episode;
- status agreement per run;
- false alarms (warning or critical events) per million steps and `diverged` statuses on long
  synthetic healthy runs: white, Student-t(3), slowly wandering AR(1) (phi 0.99, log-sd 0.14)
  and SGDR warm restarts.

    .venv/bin/python bench/diagnostics_scores.py [--markdown] [--runs NAME ...] [--synthetic-seeds N]
"""

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from tb_batchavg.diagnostics import diagnose  # noqa: E402

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                      "diagnostics_corpus")
KINDS = ("loss_spike", "grad_explosion", "divergence", "vanishing_gradient", "slingshot_precursor")
TOLERANCE = 25       # steps an event may lie outside a labelled episode and still match it
INFO_KINDS = ("slingshot_precursor",)  # kinds scored whatever their severity


def load(name):
    data = np.load(os.path.join(CORPUS, name + ".npz"))
    step = data["step"].astype(np.int64)
    return {role: (step, data[role].astype(np.float64))
            for role in ("loss", "grad_norm", "learning_rate")}


def labels():
    with open(os.path.join(CORPUS, "labels.json")) as f:
        return json.load(f)


def scored_events(result, label, ignore_before):
    """The events that count as predictions: scored kinds, warning or critical (any severity
    for INFO_KINDS), not in the run's unlabelled zones."""
    zones = [(-10**18, ignore_before - 1)] + [tuple(z) for z in label.get("ignore", [])]
    events = []
    for event in result["events"]:
        if event["kind"] not in KINDS:
            continue
        if event["severity"] == "info" and event["kind"] not in INFO_KINDS:
            continue
        if any(event["start"] <= b and event["end"] >= a for a, b in zones):
            continue
        events.append(event)
    return events


def overlaps(event, episode):
    return (event["start"] <= episode["end"] + TOLERANCE
            and event["end"] >= episode["start"] - TOLERANCE)


def score_run(result, label, ignore_before):
    """{kind: [episodes, found, events, matched events, [events per found episode]]}."""
    events = scored_events(result, label, ignore_before)
    out = {}
    for kind in KINDS:
        episodes = [p for p in label["episodes"] if p["kind"] == kind]
        mine = [e for e in events if e["kind"] == kind]
        # each event counts for the overlapping episode nearest to it (centre to centre)
        per_episode = [0] * len(episodes)
        for e in mine:
            near = [(abs(e["start"] + e["end"] - p["start"] - p["end"]), j)
                    for j, p in enumerate(episodes) if overlaps(e, p)]
            if near:
                per_episode[min(near)[1]] += 1
        matched = sum(any(overlaps(e, p) for p in episodes) for e in mine)
        out[kind] = [len(episodes), sum(c > 0 for c in per_episode), len(mine), matched,
                     [c for c in per_episode if c]]
    return out


SPLITS = ("tuning", "held-out 1", "held-out 2")


def split_of(label):
    """"tuning"; "held-out 1" (scored once, then the detectors changed once: see
    docs/diagnostics-corpus.md); "held-out 2" (never seen by any version before scoring)."""
    if not label.get("held_out"):
        return "tuning"
    return "held-out 2" if label.get("batch") == 2 else "held-out 1"


def corpus_scores(names=None):
    """Per split ("tuning", "held-out"): kind totals, statuses and per-run details."""
    spec = labels()
    ignore_before = spec.get("ignore_before", 0)
    splits = {}
    for name, label in sorted(spec["runs"].items()):
        if names and name not in names:
            continue
        series = load(name)
        started = time.perf_counter()
        result = diagnose(**series)
        seconds = time.perf_counter() - started
        split = splits.setdefault(split_of(label),
                                  {"kinds": {k: [0, 0, 0, 0, []] for k in KINDS}, "runs": []})
        run = score_run(result, label, ignore_before)
        for kind, (episodes, found, events, matched, per) in run.items():
            total = split["kinds"][kind]
            total[0] += episodes
            total[1] += found
            total[2] += events
            total[3] += matched
            total[4] += per
        split["runs"].append({"name": name, "label": label["status"], "status": result["status"],
                              "scores": run, "seconds": seconds,
                              "frequency": result.get("frequency")})
    return splits


# Synthetic healthy runs --------------------------------------------------------------------

def _ar1(rng, n, phi, sd):
    shocks = rng.standard_normal(n) * sd * np.sqrt(1 - phi ** 2)
    out = np.empty(n)
    out[0] = rng.standard_normal() * sd
    # a linear recursion by blocks: out[i] = phi * out[i-1] + shocks[i]
    from scipy.signal import lfilter
    out[1:] = lfilter([1.0], [1.0, -phi], shocks[1:], zi=[phi * out[0]])[0]
    return out


def synthetic_run(kind, seed, n):
    rng = np.random.default_rng(seed)
    i = np.arange(n)
    trend = 0.5 + 2.0 * np.exp(-i / 30_000)
    lr = np.full(n, 1e-3)
    if kind == "white":
        loss = trend + 0.05 * rng.standard_normal(n)
        grad = np.exp(0.3 * rng.standard_normal(n))
    elif kind == "student_t3":
        loss = trend + 0.05 * rng.standard_t(3, n)
        grad = np.exp(0.08 * rng.standard_t(3, n))
    elif kind == "ar1":
        loss = np.exp(_ar1(rng, n, 0.99, 0.14)) * np.exp(0.05 * rng.standard_normal(n))
        grad = np.exp(_ar1(rng, n, 0.99, 0.14) + 0.2 * rng.standard_normal(n))
    elif kind == "sgdr":
        # cosine periods of 1000, 2000, 4000, ... steps; the loss and the gradient norm rise
        # with the rate after each restart and fall back as it decays
        period, start, phase = 1000, 0, np.empty(n)
        while start < n:
            stop = min(n, start + period)
            phase[start:stop] = (i[start:stop] - start) / period
            start, period = stop, period * 2
        lr = 1e-3 * 0.5 * (1 + np.cos(np.pi * phase))
        boost = 1 + 2.0 * lr / 1e-3
        loss = trend * boost * np.exp(0.1 * rng.standard_normal(n))
        grad = boost * np.exp(0.3 * rng.standard_normal(n))
    else:
        raise ValueError(kind)
    return {"loss": (i, loss), "grad_norm": (i, grad), "learning_rate": (i, lr)}


SYNTHETIC = ("white", "student_t3", "ar1", "sgdr")


def synthetic_scores(seeds, n):
    out = {}
    for kind in SYNTHETIC:
        alarms, diverged, steps, by_kind = 0, 0, 0, {}
        for seed in range(seeds):
            result = diagnose(**synthetic_run(kind, 1000 + seed, n))
            bad = [e for e in result["events"] if e["severity"] != "info"]
            alarms += len(bad)
            for e in bad:
                by_kind[e["kind"]] = by_kind.get(e["kind"], 0) + 1
            diverged += result["status"] == "diverged"
            steps += n
        out[kind] = {"runs": seeds, "steps": steps, "alarms": alarms, "diverged": diverged,
                     "per_million": alarms / steps * 1e6, "by_kind": by_kind}
    return out


# Report ----------------------------------------------------------------------------------------

def _ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


def report(splits, synthetic, markdown=False):
    lines = []
    for split in SPLITS:
        if split not in splits:
            continue
        data = splits[split]
        runs = data["runs"]
        agree = sum(r["label"] == r["status"] for r in runs)
        lines.append(f"### {split}: {len(runs)} runs, status agreement {agree}/{len(runs)}")
        lines.append("")
        lines.append("| kind | episodes | found | recall | events | matching | precision "
                     "| events per found episode (mean / max) |")
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for kind in KINDS:
            episodes, found, events, matched, per = data["kinds"][kind]
            if not episodes and not events:
                continue
            lines.append(f"| {kind} | {episodes} | {found} | {_ratio(found, episodes)} | {events} "
                         f"| {matched} | {_ratio(matched, events)} | "
                         + (f"{np.mean(per):.2f} / {max(per)}" if per else "-") + " |")
        lines.append("")
        lines.append("| run | label | status | " + " | ".join(
            k.replace("_", " ") + " found/episodes, events" for k in KINDS[:3] + KINDS[4:]) + " |")
        lines.append("|---|---|---|" + "---|" * 4)
        for r in runs:
            cells = []
            for kind in KINDS[:3] + KINDS[4:]:
                episodes, found, events, matched, _ = r["scores"][kind]
                cells.append(f"{found}/{episodes}, {events}" if episodes or events else "")
            mark = "" if r["label"] == r["status"] else " **x**"
            lines.append(f"| {r['name']} | {r['label']} | {r['status']}{mark} | " + " | ".join(cells) + " |")
        lines.append("")
    if synthetic:
        lines.append("### long synthetic healthy runs")
        lines.append("")
        lines.append("| noise | runs x steps | warning/critical events | per million steps | diverged | events by kind |")
        lines.append("|---|---:|---:|---:|---:|---|")
        for kind, s in synthetic.items():
            lines.append(f"| {kind} | {s['runs']} x {s['steps'] // s['runs']:,} | {s['alarms']} | "
                         f"{s['per_million']:.1f} | {s['diverged']} | "
                         + (", ".join(f"{k} {v}" for k, v in sorted(s["by_kind"].items())) or "-") + " |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", nargs="*")
    parser.add_argument("--synthetic-seeds", type=int, default=10)
    parser.add_argument("--synthetic-steps", type=int, default=250_000)
    parser.add_argument("--markdown", action="store_true")
    args = parser.parse_args()
    splits = corpus_scores(args.runs)
    synthetic = synthetic_scores(args.synthetic_seeds, args.synthetic_steps) if args.synthetic_seeds else {}
    print(report(splits, synthetic, args.markdown))


if __name__ == "__main__":
    main()
