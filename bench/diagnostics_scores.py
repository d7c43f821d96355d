"""Scores of tb_batchavg.stats.diagnostics against the labelled corpus of real runs and on long
synthetic healthy runs (see docs/diagnostics-corpus.md):

- per event kind, on the tuning runs and on the held-out runs separately: episodes labelled,
  found (recall), events reported and matching a labelled episode (precision), events per
  found episode;
- status agreement per run;
- false alarms (warning or critical events) per million steps and `diverged` statuses on long
  synthetic healthy runs: white, Student-t(3), slowly wandering AR(1) (phi 0.99, log-sd 0.14)
  and SGDR warm restarts.

    .venv/bin/python -m bench.diagnostics_scores [--runs NAME ...] [--synthetic-seeds N]
        [--synthetic-steps N] [--extra-ar1-seeds N]
"""

import argparse
import json
import os
import time

import numpy as np

from tb_batchavg.stats.diagnostics import diagnose

CORPUS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "diagnostics_corpus")
KINDS = ("loss_spike", "grad_explosion", "divergence", "vanishing_gradient", "slingshot_precursor")
TOLERANCE = 25  # steps an event may lie outside a labelled episode and still match it
INFO_KINDS = ("slingshot_precursor",)  # kinds scored whatever their severity


def load(name):
    data = np.load(os.path.join(CORPUS, name + ".npz"))
    step = data["step"].astype(np.int64)
    return {role: (step, data[role].astype(np.float64)) for role in ("loss", "grad_norm", "learning_rate")}


def labels():
    with open(os.path.join(CORPUS, "labels.json")) as f:
        return json.load(f)


def scored_events(result, label, ignore_before):
    """The events that count as predictions: scored kinds, warning or critical (any severity
    for INFO_KINDS), not in the run's unlabelled zones."""
    zones = [(-(10**18), ignore_before - 1)] + [tuple(z) for z in label.get("ignore", [])]
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
    return event["start"] <= episode["end"] + TOLERANCE and event["end"] >= episode["start"] - TOLERANCE


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
            near = [
                (abs(e["start"] + e["end"] - p["start"] - p["end"]), j)
                for j, p in enumerate(episodes)
                if overlaps(e, p)
            ]
            if near:
                per_episode[min(near)[1]] += 1
        matched = sum(any(overlaps(e, p) for p in episodes) for e in mine)
        out[kind] = [len(episodes), sum(c > 0 for c in per_episode), len(mine), matched, [c for c in per_episode if c]]
    return out


SPLITS = ("tuning", "held-out 1", "held-out 2")


def split_of(label):
    """ "tuning"; "held-out 1" (scored once, then the detectors changed once: see
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
        split = splits.setdefault(split_of(label), {"kinds": {k: [0, 0, 0, 0, []] for k in KINDS}, "runs": []})
        run = score_run(result, label, ignore_before)
        for kind, (episodes, found, events, matched, per) in run.items():
            total = split["kinds"][kind]
            total[0] += episodes
            total[1] += found
            total[2] += events
            total[3] += matched
            total[4] += per
        split["runs"].append(
            {
                "name": name,
                "label": label["status"],
                "status": result["status"],
                "scores": run,
                "seconds": seconds,
                "frequency": result.get("frequency"),
            }
        )
    return splits


# Synthetic healthy runs --------------------------------------------------------------------


def _ar1(rng, n, phi, sd):
    shocks = rng.standard_normal(n) * sd * np.sqrt(1 - phi**2)
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
    elif kind == "student_t3_wide":
        # log gradient norm 0.3 t3: 1 point in 435 is a 10x jump, an event by design
        loss = trend + 0.05 * rng.standard_t(3, n)
        grad = np.exp(0.3 * rng.standard_t(3, n))
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
# Reported beside them: noise whose 10x jumps are events by design (issue 15, principle 1).
WIDE = ("student_t3_wide",)


def synthetic_scores(seeds, n, kinds=SYNTHETIC + WIDE, extra_ar1_seeds=0):
    out = {}
    for kind in kinds:
        alarms, diverged, steps, by_kind, jumps = 0, 0, 0, {}, 0
        for seed in range(seeds + (extra_ar1_seeds if kind == "ar1" else 0)):
            series = synthetic_run(kind, 1000 + seed, n)
            grad = series["grad_norm"][1]
            jumps += int(np.count_nonzero(grad >= 10 * np.median(grad)))
            result = diagnose(**series)
            bad = [e for e in result["events"] if e["severity"] != "info"]
            alarms += len(bad)
            for e in bad:
                by_kind[e["kind"]] = by_kind.get(e["kind"], 0) + 1
            diverged += result["status"] == "diverged"
            steps += n
        out[kind] = {
            "runs": steps // n,
            "steps": steps,
            "alarms": alarms,
            "diverged": diverged,
            "per_million": alarms / steps * 1e6,
            "by_kind": by_kind,
            "jumps": jumps,
        }
    return out


# Report ----------------------------------------------------------------------------------------


def _ratio(a, b):
    return f"{a / b:.2f}" if b else "-"


def report(splits, synthetic):
    lines = []
    for split in SPLITS:
        if split not in splits:
            continue
        data = splits[split]
        runs = data["runs"]
        agree = sum(r["label"] == r["status"] for r in runs)
        lines.append(f"### {split}: {len(runs)} runs, status agreement {agree}/{len(runs)}")
        lines.append("")
        lines.append(
            "| kind | episodes | found | recall | events | matching | precision "
            "| events per found episode (mean / max) |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---:|---:|")
        for kind in KINDS:
            episodes, found, events, matched, per = data["kinds"][kind]
            if not episodes and not events:
                continue
            lines.append(
                f"| {kind} | {episodes} | {found} | {_ratio(found, episodes)} | {events} "
                f"| {matched} | {_ratio(matched, events)} | "
                + (f"{np.mean(per):.2f} / {max(per)}" if per else "-")
                + " |"
            )
        lines.append("")
        lines.append(
            "| run | label | status | "
            + " | ".join(k.replace("_", " ") + " found/episodes, events" for k in KINDS[:3] + KINDS[4:])
            + " |"
        )
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
        lines.append(
            "| noise | runs x steps | warning/critical events | per million steps | diverged "
            "| gradient points 10x the median | events by kind |"
        )
        lines.append("|---|---:|---:|---:|---:|---:|---|")
        for kind, s in synthetic.items():
            lines.append(
                f"| {kind} | {s['runs']} x {s['steps'] // s['runs']:,} | {s['alarms']} | "
                f"{s['per_million']:.1f} | {s['diverged']} | {s['jumps']} | "
                + (", ".join(f"{k} {v}" for k, v in sorted(s["by_kind"].items())) or "-")
                + " |"
            )
        lines.append("")
    return "\n".join(lines)


SECTION = "## Diagnostics against labelled real runs"

# The blind scores, kept as they were measured (no later version can reproduce them): each
# held-out batch scored once by the detectors of the commit named, before any change for it.
FIRST_LOOK = """Blind scores, each held-out batch scored once before any change made for it (kept as measured):

| batch (detectors of) | status agreement | loss_spike recall / precision / max events per episode | grad_explosion | divergence | slingshot_precursor |
|---|---|---|---|---|---|
| held-out 1, 10 runs (1366d61) | 9/10 | 13/15 = 0.87 / 18/20 = 0.90 / 5 | 16/16 = 1.00 / 16/18 = 0.89 / 1 | 2/2 / 2/2 / 1 | 12/12 / 12/13 = 0.92 / 1 |
| held-out 2, 12 runs (99f2aa6) | 11/12 | 8/8 = 1.00 / 14/15 = 0.93 / 4 | 33/33 = 1.00 / 33/33 = 1.00 / 1 | 2/2 / 2/2 / 1 | 7/7 / 7/7 / 1 |

After held-out 1: a loss excursion's gate (a gradual bump from a loss of 0.01 was cut into 5
events). After held-out 2: loss spikes at most half a window apart became one burst (the
copy-task slingshots were 3-4 events each). The tables below are the current code's, on every
split: held-out 1 and 2 are no longer blind for those two changes."""


def write_section(text):
    """Replaces (or appends) the section in BENCHMARKS.md."""
    import re

    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "BENCHMARKS.md")
    with open(path, encoding="utf-8") as f:
        body = f.read()
    pattern = re.compile(r"^%s\n.*?(?=^## |\Z)" % re.escape(SECTION), re.S | re.M)
    if pattern.search(body):
        body = pattern.sub(lambda _: text, body)
    else:
        body = body.rstrip("\n") + "\n\n" + text
    with open(path, "w", encoding="utf-8") as f:
        f.write(body)


def section(splits, synthetic, seconds):
    runs = sum(len(split["runs"]) for split in splits.values())
    agree = sum(r["label"] == r["status"] for split in splits.values() for r in split["runs"])
    return (
        f"{SECTION}\n\n"
        "`.venv/bin/python -m bench.diagnostics_scores --synthetic-seeds 10 --extra-ar1-seeds 30 "
        "--write` (replaced on each run; see docs/diagnostics-corpus.md for the corpus, its "
        "labels and splits). Each event kind: labelled episodes found by at least one event "
        f"(recall), events matching a labelled episode within {TOLERANCE} steps (precision), "
        "events per found episode; warning and critical events count (and the info "
        "`slingshot_precursor`); nothing in a run's first 50 steps or in its `ignore` "
        f"ranges. Status agreement over all {runs} labelled runs: {agree}/{runs}. "
        f"diagnose() took {seconds:.1f} s over the {runs} runs.\n\n"
        f"{FIRST_LOOK}\n\n{report(splits, synthetic)}\n"
        "Targets (issue 15): status agreement >= 90% of labelled runs; recall and precision "
        ">= 0.8 per kind; <= 2 events per labelled episode; no `diverged` on healthy runs, "
        "at most 1 per 10M synthetic healthy steps. Student-t rows: the gradient-norm events "
        "are the points 10x over the median (the column before), events by design (a 10x jump "
        "is an event however often it happens); at log-scale 0.08 that is 1 point in 21,700, "
        "at 0.3 (`student_t3_wide`) 1 in 435.\n"
    )


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", nargs="*")
    parser.add_argument("--synthetic-seeds", type=int, default=10)
    parser.add_argument("--synthetic-steps", type=int, default=250_000)
    parser.add_argument("--write", action="store_true", help="write the section into BENCHMARKS.md")
    parser.add_argument(
        "--extra-ar1-seeds",
        type=int,
        default=0,
        help="more AR(1) runs, for the rate of diverged statuses per 10M steps",
    )
    args = parser.parse_args()
    splits = corpus_scores(args.runs)
    synthetic = (
        synthetic_scores(args.synthetic_seeds, args.synthetic_steps, extra_ar1_seeds=args.extra_ar1_seeds)
        if args.synthetic_seeds
        else {}
    )
    seconds = sum(r["seconds"] for split in splits.values() for r in split["runs"])
    if args.write:
        write_section(section(splits, synthetic, seconds))
    print(report(splits, synthetic))


if __name__ == "__main__":
    main()
