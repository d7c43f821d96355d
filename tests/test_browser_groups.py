"""Groups in the tab (issue 17 item 1) in a real browser against a real `tensorboard` process: a
seed group grouped by parent directory is drawn as one mean per chart (equal to the `group`
route's answer), the tooltip gives n, and the health table has the group's row (the worst status of
its runs and how many runs are in each status, equal to the `diagnostics` route's statuses).
Chromium from Debian driven by Playwright (tests/test_browser.py's harness)."""

import urllib.parse

import numpy as np
import pytest

from tests import helpers
from tests.test_browser import VIEWPORT, Tab

pytestmark = pytest.mark.browser

N = 1500
SEEDS = ["seeds/seed_%d" % i for i in range(4)]
SOLO = "solo"  # a top-level run: in no group
STATUS_ORDER = ["diverged", "warning", "ok", "no_data"]

GROUP_DRAWN_JS = """(want) => {
  const root = document.getElementById('batchavg');
  if (root.dataset.state !== 'ready' || root.dataset.groups !== String(want)) return false;
  return ['loss', 'grad_norm', 'learning_rate'].every(
    (role) => document.querySelector(`[data-role=${role}]`).dataset.groupMeans === String(want));
}"""


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    root = tmp_path_factory.mktemp("group_logs")
    for i, name in enumerate(SEEDS):
        columns = helpers.training_like(N, seed=i)
        if i == 2:  # one seed diverges at the end: the group's worst status
            columns["train/loss"][N - 300 :] *= np.geomspace(1, 1e4, 300).astype(np.float32)
        helpers.write_scalars(str(root / name), columns)
    helpers.write_scalars(str(root / SOLO), helpers.training_like(N, seed=9))
    return root


@pytest.fixture(scope="module")
def tab(browser, server):
    context = browser.new_context(viewport=VIEWPORT)
    tab = Tab(context.new_page(), server)
    tab.open()
    yield tab
    context.close()


def test_seed_group_by_parent_directory(tab):
    mode = tab.frame.locator("select[aria-label='Group runs']")
    mode.select_option("parent")
    tab.frame.wait_for_function(GROUP_DRAWN_JS, arg=1, timeout=60000)

    # One group mean per chart, drawn over its runs (faint), the solo run as usual.
    for index, role in enumerate(["loss", "grad_norm", "learning_rate"]):
        drawn = tab.eval(
            "(i) => window.batchavg.panels[i].chart.series.filter((s) => s.group)"
            ".map((s) => ({group: s.group, y: [...s.y].map((v) => Number.isNaN(v) ? null : v), "
            "step: s.step, n: s.n}))",
            index,
        )
        assert [d["group"] for d in drawn] == ["seeds"], role
        faint = tab.eval(
            "(i) => window.batchavg.panels[i].chart.series.filter((s) => s.run.startsWith('seeds/'))"
            ".map((s) => s.alpha)",
            index,
        )
        assert faint and all(a is not None and a < 0.5 for a in faint), role
        # The drawn mean is the group route's answer to the request the tab made.
        urls = [u for u in tab.requests if "/group?" in u and "role=%s&" % role in u]
        assert urls, role
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(urls[-1]).query))
        assert query["runs"] == "^(?:%s)$" % "|".join(SEEDS)
        answer = tab.api_json("group", **query)
        assert answer["runs"] == SEEDS and answer["left_out"] == []
        assert drawn[0]["step"] == answer["step"] and drawn[0]["n"] == answer["n"]
        assert drawn[0]["y"] == answer["mean"]
        assert max(answer["n"]) == 4
    assert tab.coloured_pixels("loss") > 500

    # The tooltip gives the group's mean and n.
    box = tab.plot_box("loss")
    tab.page.mouse.move(box["left"] + 0.5 * (box["right"] - box["left"]), (box["top"] + box["bottom"]) / 2)
    tab.frame.wait_for_function("() => document.querySelector('[data-role=loss] .tooltip-row[data-group]') !== null")
    row = tab.eval(
        "(() => { const r = document.querySelector('[data-role=loss] .tooltip-row[data-group]');"
        "return {...r.dataset, text: r.textContent}; })()"
    )
    assert row["group"] == "seeds" and row["n"] == "4" and "(n 4)" in row["text"]

    # The health table: one row for the group, with the worst status of its runs and the counts.
    tab.frame.wait_for_function(
        "() => { const r = document.querySelector('tr.group-row[data-group=seeds]');"
        "return r !== null && !r.textContent.includes('checking'); }",
        timeout=60000,
    )
    statuses = [tab.api_json("diagnostics", run=run)["status"] for run in SEEDS]
    worst = next(s for s in STATUS_ORDER if s in statuses)
    assert worst == "diverged"  # seed 2
    group_row = tab.frame.locator("tr.group-row[data-group=seeds]")
    assert group_row.count() == 1
    assert group_row.get_attribute("data-worst") == worst
    assert group_row.locator(".status").text_content() == worst
    counts = group_row.locator(".group-counts").text_content()
    expected = " · ".join("%d %s" % (statuses.count(s), s.replace("_", " ")) for s in STATUS_ORDER if s in statuses)
    assert counts == expected
    assert tab.frame.locator("tr.group-row").count() == 1  # the solo run is in no group
    tab.screenshot("tab_group_seeds.png")

    # Back to no grouping: no group mean, no group row.
    mode.select_option("none")
    tab.frame.wait_for_function(GROUP_DRAWN_JS, arg=0, timeout=60000)
    assert tab.frame.locator("tr.group-row").count() == 0
