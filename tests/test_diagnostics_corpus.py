"""The diagnostics against the labelled corpus of real Keras runs (tests/data/diagnostics_corpus,
docs/diagnostics-corpus.md): each run's per-batch loss, gradient norm and learning rate are
written back as event files with TensorBoard's own writer and read through the plugin's
`diagnostics` route; the answers are scored against labels written by eye from the plots
before the detectors were run. Also long synthetic healthy runs: never `diverged`."""

import json
import os

import numpy as np
import pytest
from werkzeug.test import Client

from bench import diagnostics_scores as scores
from tb_batchavg.stats.diagnostics import diagnose
from tests import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORPUS = os.path.join(ROOT, "tests", "data", "diagnostics_corpus")

with open(os.path.join(CORPUS, "labels.json")) as _f:
    LABELS = json.load(_f)
RUNS = sorted(LABELS["runs"])
TAGS = {"loss": "train/loss", "grad_norm": "train/grad_norm", "learning_rate": "train/learning_rate"}


@pytest.fixture(scope="module")
def answers(tmp_path_factory):
    """{run: the diagnostics route's answer} over event files of every corpus run."""
    logdir = tmp_path_factory.mktemp("corpus")
    for name in RUNS:
        data = np.load(os.path.join(CORPUS, name + ".npz"))
        helpers.write_scalars(str(logdir / name), {tag: data[role] for role, tag in TAGS.items()}, steps=data["step"])
    client = Client(helpers.make_app(str(logdir)))
    return {name: helpers.get_json(client, "diagnostics?run=" + name) for name in RUNS}


def test_the_route_reads_the_runs_as_written(answers):
    # The event files hold the float32 values of the arrays: the route's answer is diagnose()'s.
    for name in ("mlp_cls_eps_adam3e-3_s0", "tfm_bigram_adam0.03_s0"):
        series = scores.load(name)
        direct = diagnose(**series)
        assert answers[name]["tags"] == TAGS
        assert answers[name]["events"] == direct["events"]
        assert answers[name]["status"] == direct["status"]


@pytest.mark.parametrize("split", ["tuning", "held-out"])
def test_statuses_agree_with_the_labels(answers, split):
    names = [n for n in RUNS if LABELS["runs"][n].get("held_out", False) == (split == "held-out")]
    assert names
    agree = [n for n in names if answers[n]["status"] == LABELS["runs"][n]["status"]]
    assert len(agree) >= 0.9 * len(names), {
        n: (answers[n]["status"], LABELS["runs"][n]["status"]) for n in names if n not in agree
    }


def test_healthy_runs_are_ok_and_nothing_healthy_diverges(answers):
    healthy = [n for n in RUNS if LABELS["runs"][n]["status"] == "ok"]
    not_ok = {
        n: [e for e in answers[n]["events"] if e["severity"] != "info"] for n in healthy if answers[n]["status"] != "ok"
    }
    assert len(not_ok) <= 0.1 * len(healthy), not_ok
    # warm restarts (SGDR): at most one of the seven runs not ok (mlp_cls_sgdr_adam_s2 has a loss
    # spike at step 220, before its first restart, not labelled)
    assert sum("sgdr" in n for n in not_ok) <= 1, not_ok
    for name in RUNS:
        label = LABELS["runs"][name]["status"]
        if label != "diverged":
            assert answers[name]["status"] != "diverged", name
        kinds = {e["kind"] for e in answers[name]["events"]}
        if not any(p["kind"] == "vanishing_gradient" for p in LABELS["runs"][name]["episodes"]):
            assert "vanishing_gradient" not in kinds, name


def _totals(answers, held_out):
    totals = {kind: [0, 0, 0, 0, []] for kind in scores.KINDS}
    for name in RUNS:
        label = LABELS["runs"][name]
        if label.get("held_out", False) != held_out:
            continue
        for kind, (episodes, found, events, matched, per) in scores.score_run(
            answers[name], label, LABELS["ignore_before"]
        ).items():
            total = totals[kind]
            total[0] += episodes
            total[1] += found
            total[2] += events
            total[3] += matched
            total[4] += per
    return totals


@pytest.mark.parametrize("held_out", [False, True])
def test_recall_and_precision_per_kind(answers, held_out):
    for kind, (episodes, found, events, matched, per) in _totals(answers, held_out).items():
        if episodes:
            assert found >= 0.8 * episodes, (kind, found, episodes)
        if events:
            assert matched >= 0.8 * events, (kind, matched, events)
        assert all(count <= 2 for count in per), (kind, per)


def test_frequent_gradient_spikes_are_counted(answers):
    # "gradient spikes: N in 4,000 steps": the transformers at 3e-2 and 1e-1 without warm-up
    for name in RUNS:
        if name.startswith(("tfm_bigram_adam0.03", "tfm_bigram_adam0.1_")):
            frequency = answers[name]["frequency"]["grad_explosion"]
            labelled = sum(p["kind"] == "grad_explosion" for p in LABELS["runs"][name]["episodes"])
            assert frequency["steps"] == 4000
            assert 0.8 * labelled <= frequency["count"] <= 1.25 * labelled, (name, frequency)


def test_slingshots_are_one_episode_each_with_the_gradient_leading(answers):
    for name in RUNS:
        if not name.startswith("mlp_cls_eps"):
            continue
        precedence = answers[name]["precedence"]
        # the gradient norm leads the loss by 5-25 steps in these runs (by eye)
        assert precedence["matched"] >= precedence["of"] - 2
        assert 2 <= precedence["median_lead_steps"] <= 25, precedence
        precursors = [e for e in answers[name]["events"] if e["kind"] == "slingshot_precursor"]
        assert len(precursors) >= 4 and all(e["severity"] == "info" for e in precursors)


@pytest.mark.parametrize("kind", scores.SYNTHETIC)
def test_long_synthetic_healthy_runs_do_not_diverge(kind):
    for seed in range(2):
        result = diagnose(**scores.synthetic_run(kind, seed, 250_000))
        assert result["status"] != "diverged", (kind, seed)
        alarms = [e for e in result["events"] if e["severity"] != "info"]
        assert len(alarms) <= 25, (kind, seed, alarms[:5])
